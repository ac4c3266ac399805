package sumologic_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/exporters/sumologic"
)

func events(n, size int) []exporters.Event {
	out := make([]exporters.Event, n)
	for i := range out {
		out[i] = exporters.Event{Time: time.Unix(1700000000, 0), Kind: exporters.Access,
			JSON: []byte(fmt.Sprintf(`{"request_id":"r%d","pad":%q}`, i, strings.Repeat("p", size)))}
	}
	return out
}

func TestExportHeadersAndSplit(t *testing.T) {
	s := exportertest.NewSumo("TOKEN")
	defer s.Close()
	x, err := sumologic.New("sumo", map[string]string{
		"url": s.SourceURL(), "source_category": "prod/gw", "source_name": "access", "fields": "env=prod,team=api",
	}, exporters.Settings{Hostname: "gw7"})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Export(context.Background(), events(2000, 1000)); err != nil {
		t.Fatal(err)
	}
	if s.Unique() != 2000 || len(s.Problems()) > 0 {
		t.Fatalf("unique %d problems %v", s.Unique(), s.Problems())
	}
	if s.Requests() < 2 {
		t.Fatalf("2 MB sent in %d request(s): over the 1 MB limit", s.Requests())
	}
	h := s.LastHeaders()
	for k, want := range map[string]string{"X-Sumo-Category": "prod/gw", "X-Sumo-Name": "access", "X-Sumo-Host": "gw7", "X-Sumo-Fields": "env=prod,team=api", "Content-Encoding": "gzip"} {
		if h.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, h.Get(k), want)
		}
	}
}

func TestHTTPTypeParamsAndErrors(t *testing.T) {
	s := exportertest.NewSumo("TOKEN")
	defer s.Close()
	host, port, _ := strings.Cut(strings.TrimPrefix(s.URL, "http://"), ":")
	x, err := sumologic.New("sumo", map[string]string{"host": host, "port": port, "uri": "/receiver/v1/http/TOKEN", "format": "json_lines", "tls": "Off", "json_date_key": "date"}, exporters.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Export(context.Background(), events(3, 1)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(s.Events()[0]), `"date":1700000000`) {
		t.Errorf("no date key: %s", s.Events()[0])
	}
	s.SetFault(func(int) exportertest.Fault { return exportertest.Fault{Status: 429} })
	if xe := exporters.AsError(x.Export(context.Background(), events(1, 1))); xe.Status != 429 || !xe.Retryable {
		t.Errorf("throttle: %+v", xe)
	}
	s.SetFault(nil)
	bad, _ := sumologic.New("sumo", map[string]string{"url": s.URL + "/receiver/v1/http/WRONG"}, exporters.Settings{})
	if xe := exporters.AsError(bad.Export(context.Background(), events(1, 1))); xe.Status != 401 || xe.Retryable {
		t.Errorf("bad token: %+v", xe)
	}
	if _, err := sumologic.New("s", map[string]string{"host": "h"}, exporters.Settings{}); err == nil {
		t.Error("http type without uri accepted")
	}
	if _, err := sumologic.New("s", map[string]string{"url": s.SourceURL(), "format": "msgpack"}, exporters.Settings{}); err == nil {
		t.Error("format msgpack accepted")
	}
}
