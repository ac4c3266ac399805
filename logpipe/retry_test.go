package logpipe

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters/exportertest"
)

// random503 answers 503 to about a third of the requests, at random.
func random503(seed uint64) func(int) exportertest.Fault {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, 17))
	return func(int) exportertest.Fault {
		mu.Lock()
		defer mu.Unlock()
		if r.Float64() < 0.3 {
			return exportertest.Fault{Status: 503}
		}
		return exportertest.Fault{}
	}
}

// Batches split into many requests while the aggregator refuses 30% of
// them at random: every record arrives, and none twice, since a 503 is a
// known outcome and only the refused request is resent.
func TestRetriesPerRequest(t *testing.T) {
	const n = 6000
	// Closed by Cleanup: the parallel subtests run after this returns.
	hec := exportertest.NewHEC("hec-token")
	t.Cleanup(hec.Close)
	ack := exportertest.NewHEC("hec-token")
	t.Cleanup(ack.Close)
	ack.Ack, ack.AckAfterPolls = true, 1
	nr := exportertest.NewNewRelic("nr-key")
	t.Cleanup(nr.Close)
	sumo := exportertest.NewSumo("SUMOTOKEN")
	t.Cleanup(sumo.Close)
	cases := []struct {
		name, typ string
		rcv       *exportertest.Receiver
		params    map[string]string
	}{
		{"splunk", "splunk", hec.Receiver, map[string]string{"endpoint": hec.URL, "splunk_token": "hec-token", "max_body_bytes": "16384"}},
		{"splunk-indexer-ack", "splunk", ack.Receiver, map[string]string{"endpoint": ack.URL, "splunk_token": "hec-token", "max_body_bytes": "16384",
			"indexer_ack": "on", "ack_poll_interval": "5ms"}},
		{"newrelic", "newrelic", nr.Receiver, map[string]string{"endpoint": nr.URL + "/log/v1", "api_key": "nr-key", "max_body_bytes": "3000"}},
		{"sumologic", "sumologic", sumo.Receiver, map[string]string{"url": sumo.SourceURL(), "max_body_bytes": "16384"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.rcv.SetFault(random503(uint64(i)))
			p := mustStart(t, logging("out", c.typ, c.params), testOptions(t, t.TempDir()))
			for i := 0; i < n; i += 500 {
				if bad, err := p.IngestJSONLines(lines(i, i+500)); err != nil || bad != 0 {
					t.Fatalf("ingest: %d bad, %v", bad, err)
				}
			}
			if !c.rcv.WaitUnique(n, 3*time.Minute) {
				t.Fatalf("%d of %d records arrived; stats %+v", c.rcv.Unique(), n, p.Stats())
			}
			dups := 0
			for id, k := range c.rcv.Counts() {
				if k > 1 {
					dups += k - 1
					t.Errorf("%s arrived %d times", id, k)
				}
			}
			st := p.Stats()[0]
			t.Logf("%s: %d records in %d requests, %d duplicates, %d retried", c.name, n, c.rcv.Requests(), dups, st.Retried)
			if st.Retried == 0 || c.rcv.Requests() < 3*n/2000 {
				t.Errorf("the fault plan did not bite (retried %d, %d requests): the test proves nothing", st.Retried, c.rcv.Requests())
			}
			if p := c.rcv.Problems(); len(p) > 0 {
				t.Fatalf("protocol problems: %v", p[:min(5, len(p))])
			}
		})
	}
}

// switchable is an address whose listener comes and goes, forwarding to
// a stand-in while up: an aggregator that is down (connections refused),
// then back.
type switchable struct {
	addr, to string
	mu       sync.Mutex
	ln       net.Listener
}

func newSwitchable(t *testing.T, to string) *switchable {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &switchable{addr: ln.Addr().String(), to: to}
	ln.Close()
	t.Cleanup(s.down)
	return s
}

func (s *switchable) up(t *testing.T) {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", s.to)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
}

func (s *switchable) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

// An aggregator that comes back is noticed by probing, not after the
// back-off: with a back-off of ten minutes, delivery still completes
// right after it accepts connections again.
func TestRecoveredAggregatorIsProbed(t *testing.T) {
	hec := exportertest.NewHEC("t")
	defer hec.Close()
	sw := newSwitchable(t, hec.URL[len("http://"):])
	opts := testOptions(t, t.TempDir())
	opts.Retry = RetryOptions{Min: 10 * time.Minute, Max: 10 * time.Minute, ProbeInterval: 20 * time.Millisecond}
	p := mustStart(t, logging("hec", "splunk", map[string]string{"endpoint": "http://" + sw.addr, "splunk_token": "t"}), opts)
	if _, err := p.IngestJSONLines(lines(0, 300)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for p.Stats()[0].Retried == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt while the aggregator was down: %+v", p.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	sw.up(t)
	if !hec.WaitUnique(300, time.Minute) {
		t.Fatalf("%d of 300 arrived after the aggregator came back; stats %+v", hec.Unique(), p.Stats())
	}
}

// While the aggregator answers (503 without Retry-After) the wait stays
// short whatever the back-off says: it is up and will take the batch soon.
func TestAnsweringAggregatorWaitIsCapped(t *testing.T) {
	hec := exportertest.NewHEC("t")
	defer hec.Close()
	hec.SetFault(func(n int) exportertest.Fault {
		if n <= 4 {
			return exportertest.Fault{Status: 503}
		}
		return exportertest.Fault{}
	})
	opts := testOptions(t, t.TempDir())
	opts.Retry = RetryOptions{Min: 10 * time.Minute, Max: 10 * time.Minute, AnsweringMax: 20 * time.Millisecond}
	p := mustStart(t, logging("hec", "splunk", map[string]string{"endpoint": hec.URL, "splunk_token": "t"}), opts)
	if _, err := p.IngestJSONLines(lines(0, 300)); err != nil {
		t.Fatal(err)
	}
	if !hec.WaitUnique(300, time.Minute) {
		t.Fatalf("%d of 300 arrived; stats %+v", hec.Unique(), p.Stats())
	}
	if hec.Requests() < 5 {
		t.Fatalf("%d requests: the 503s were never sent", hec.Requests())
	}
}
