package exporters

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestPosterSendAll drives the shared send loop against a real server:
// every body is posted gzipped with the fixed headers, each one's outcome
// is reported on its own (the second answered 503, the others 2xx), and
// nothing more is attempted once the server cannot be reached.
func TestPosterSendAll(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil || r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("X-Token") != "t1" {
			t.Errorf("request: gzip err %v, headers %v", err, r.Header)
			w.WriteHeader(400)
			return
		}
		b, _ := io.ReadAll(zr)
		mu.Lock()
		got = append(got, string(b))
		n := len(got)
		mu.Unlock()
		if n == 2 {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
	}))
	defer srv.Close()
	p := &Poster{Client: srv.Client(), URL: srv.URL, Header: http.Header{"X-Token": {"t1"}}, Gzip: true}
	bodies := []string{"a", "bb", "ccc"}
	var outs []Outcome
	p.SendAll(context.Background(), func(emit func([]byte, int, int) error) error {
		for i, b := range bodies {
			if err := emit([]byte(b), i, i+1); err != nil {
				return err
			}
		}
		return nil
	}, func(o Outcome) { outs = append(outs, o) })
	if len(got) != 3 || got[0] != "a" || got[1] != "bb" || got[2] != "ccc" {
		t.Fatalf("server got %q", got)
	}
	if len(outs) != 3 || outs[0].Err != nil || outs[2].Err != nil || AsError(outs[1].Err).Status != 503 || outs[1].Lo != 1 || outs[1].Hi != 2 {
		t.Fatalf("outcomes %+v", outs)
	}

	// A port nobody listens on: the first body fails as a transport
	// error and the rest are not attempted.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	p = &Poster{Client: &http.Client{}, URL: dead}
	outs = nil
	attempted := 0
	p.SendAll(context.Background(), func(emit func([]byte, int, int) error) error {
		for i := range 3 {
			attempted++
			if err := emit([]byte("x"), i, i+1); err != nil {
				return err
			}
		}
		return nil
	}, func(o Outcome) { outs = append(outs, o) })
	if attempted != 1 || len(outs) != 1 || AsError(outs[0].Err).Status != 0 {
		t.Fatalf("unreachable: %d attempted, outcomes %+v", attempted, outs)
	}
}
