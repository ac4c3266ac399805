// Command upstream is the demo upstream that `make run` starts beside the
// gateway: it answers every request with a JSON echo of what it received,
// so a new user can see what the gateway forwarded (path rewrite, headers).
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	name := flag.String("name", "demo-upstream", "name reported in responses")
	flag.Parse()

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"upstream": *name,
			"method":   r.Method,
			"path":     r.URL.RequestURI(),
			"host":     r.Host,
			"headers":  r.Header,
		})
	})
	log.Printf("demo upstream %q listening on %s", *name, *addr)
	srv := &http.Server{Addr: *addr, ErrorLog: log.New(os.Stderr, "", 0)}
	log.Fatal(srv.ListenAndServe())
}
