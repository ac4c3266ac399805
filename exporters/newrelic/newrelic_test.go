package newrelic_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/exporters/newrelic"
)

func events(n, size int, random bool) []exporters.Event {
	out := make([]exporters.Event, n)
	for i := range out {
		pad := make([]byte, size/2)
		if random { // incompressible, to exercise the compressed limit
			_, _ = rand.Read(pad)
		}
		out[i] = exporters.Event{
			Time: time.UnixMilli(1700000000123), Kind: exporters.Access, Message: []byte("GET / 200"),
			JSON: []byte(fmt.Sprintf(`{"request_id":"r%d","pad":"%s"}`, i, hex.EncodeToString(pad))),
		}
	}
	return out
}

func TestExport(t *testing.T) {
	nr := exportertest.NewNewRelic("key")
	defer nr.Close()
	for _, keyParam := range []string{"api_key", "license_key"} {
		x, err := newrelic.New("nr", map[string]string{"endpoint": nr.URL + "/log/v1", keyParam: "key"}, exporters.Settings{Hostname: "gw"})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Export(context.Background(), events(20, 10, false)); err != nil {
			t.Fatalf("%s: %v", keyParam, err)
		}
	}
	if nr.Unique() != 20 || len(nr.Events()) != 40 {
		t.Fatalf("unique %d events %d", nr.Unique(), len(nr.Events()))
	}
	if p := nr.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
}

func TestSplitsUnderCompressedLimit(t *testing.T) {
	nr := exportertest.NewNewRelic("key")
	defer nr.Close()
	x, err := newrelic.New("nr", map[string]string{"base_uri": nr.URL + "/log/v1", "api_key": "key"}, exporters.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	// 1,000 records of 2 KB of random hex: ~1.1 MB compressed.
	if err := x.Export(context.Background(), events(1000, 2000, true)); err != nil {
		t.Fatal(err)
	}
	if nr.Unique() != 1000 || len(nr.Problems()) > 0 {
		t.Fatalf("unique %d, problems %v", nr.Unique(), nr.Problems())
	}
	if nr.Requests() < 2 {
		t.Fatalf("%d requests; the payload cannot fit fewer", nr.Requests())
	}
}

func TestErrors(t *testing.T) {
	nr := exportertest.NewNewRelic("key")
	defer nr.Close()
	x, err := newrelic.New("nr", map[string]string{"endpoint": nr.URL + "/log/v1", "api_key": "nope"}, exporters.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if xe := exporters.AsError(x.Export(context.Background(), events(1, 1, false))); xe.Status != 403 || xe.Retryable {
		t.Errorf("bad key: %+v", xe)
	}
	x, _ = newrelic.New("nr", map[string]string{"endpoint": nr.URL + "/log/v1", "api_key": "key"}, exporters.Settings{})
	nr.SetFault(func(int) exportertest.Fault { return exportertest.Fault{Status: 429, RetryAfter: "3"} })
	if xe := exporters.AsError(x.Export(context.Background(), events(1, 1, false))); xe.Status != 429 || !xe.Retryable || xe.RetryAfter != 3*time.Second {
		t.Errorf("throttled: %+v", xe)
	}
}

func TestRegions(t *testing.T) {
	for region, want := range map[string]string{"": newrelic.EndpointUS, "EU": newrelic.EndpointEU, "fedramp": newrelic.EndpointFedRAMP} {
		if _, err := newrelic.New("nr", map[string]string{"region": region, "license_key": "k"}, exporters.Settings{}); err != nil {
			t.Errorf("region %q (%s): %v", region, want, err)
		}
	}
	for _, p := range []map[string]string{{"region": "mars", "api_key": "k"}, {}, {"api_key": "a", "license_key": "b"}, {"api_key": "a", "apikey": "b"}} {
		if _, err := newrelic.New("nr", p, exporters.Settings{}); err == nil {
			t.Errorf("%v accepted", p)
		}
	}
}
