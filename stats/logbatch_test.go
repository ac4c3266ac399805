package stats

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/stats/topapi"
)

// openBatched subscribes to a batched stream and waits for its first
// batch event (the backlog), which proves the subscription is live.
func openBatched(t *testing.T, s *Stats, query string) *bufio.Scanner {
	t.Helper()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/api/v1/logs/stream?" + query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET stream?%s: %s", query, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	if ev := readEvents(t, sc, 1)[0]; ev.event != topapi.EventBatch {
		t.Fatalf("first event = %+v, want the backlog's batch event", ev)
	}
	return sc
}

// batchedRead reads batches until records+skipped reach total; it returns
// the paths received in order, the batch sizes and the final skip count.
func batchedRead(t *testing.T, sc *bufio.Scanner, total int) (paths []string, sizes []int, skipped uint64) {
	t.Helper()
	inBatch := 0
	for len(paths)+int(skipped) < total {
		ev := readEvents(t, sc, 1)[0]
		switch ev.event {
		case topapi.EventRecord:
			var r struct {
				Path string `json:"path"`
				Code int    `json:"response_code"`
			}
			if err := json.Unmarshal([]byte(ev.data), &r); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, fmt.Sprintf("%d %s", r.Code, r.Path))
			inBatch++
		case topapi.EventBatch:
			var b topapi.Batch
			if err := json.Unmarshal([]byte(ev.data), &b); err != nil {
				t.Fatal(err)
			}
			if b.Records != inBatch {
				t.Errorf("batch event says %d records, %d were sent", b.Records, inBatch)
			}
			sizes = append(sizes, inBatch)
			inBatch, skipped = 0, b.Skipped
		default:
			t.Fatalf("unexpected event %+v", ev)
		}
	}
	return paths, sizes, skipped
}

// A busy stream in batches: at most limit records a batch, the newest
// ones, in order, and every other record counted as skipped.
func TestLogStreamBatchesKeepNewest(t *testing.T) {
	s := New(Options{SubscriberBuffer: 1000})
	sc := openBatched(t, s, "backlog=0&batch=50ms&limit=3")
	for i := range 200 {
		s.Write(&accesslog.Record{ResponseCode: 200, Path: fmt.Sprintf("/%03d", i)})
	}
	paths, sizes, skipped := batchedRead(t, sc, 200)
	if len(paths)+int(skipped) != 200 {
		t.Fatalf("%d records + %d skipped, want 200 accounted for", len(paths), skipped)
	}
	for _, n := range sizes {
		if n > 3 {
			t.Errorf("a batch held %d records, limit 3", n)
		}
	}
	if len(paths) == 0 || paths[len(paths)-1] != "200 /199" {
		t.Errorf("last record = %v, want the newest (/199)", paths)
	}
	for i := 1; i < len(paths); i++ {
		if paths[i] <= paths[i-1] {
			t.Errorf("records out of order: %v", paths)
		}
	}
}

// The filter applies before batching: rare 5xx among many 2xx all arrive;
// no 2xx takes a place in a batch.
func TestLogStreamBatchesFilterFirst(t *testing.T) {
	s := New(Options{SubscriberBuffer: 1000})
	sc := openBatched(t, s, "backlog=0&batch=50ms&limit=10&status=500")
	for i := range 600 {
		code := 200
		if i%100 == 50 {
			code = 503
		}
		s.Write(&accesslog.Record{ResponseCode: code, Path: fmt.Sprintf("/%03d", i)})
	}
	paths, _, skipped := batchedRead(t, sc, 6)
	want := []string{"503 /050", "503 /150", "503 /250", "503 /350", "503 /450", "503 /550"}
	if fmt.Sprint(paths) != fmt.Sprint(want) || skipped != 0 {
		t.Errorf("got %v (%d skipped), want every 5xx: %v", paths, skipped, want)
	}
}

func TestLogStreamBatchBadQueries(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, q := range []string{"batch=1ms", "batch=x", "batch=1m", "batch=1s&limit=0", "batch=1s&limit=-2", "batch=1s&limit=99999"} {
		resp, err := http.Get(srv.URL + "/api/v1/logs/stream?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("stream?%s = %s, want 400", q, resp.Status)
		}
	}
}
