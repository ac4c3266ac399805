package logpipe

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/logpipe/queue"
)

func TestDecodeJSONRoundTrip(t *testing.T) {
	rec := &accesslog.Record{StartTime: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), Method: "GET", Path: "/a?b=\"c\"",
		ResponseCode: 200, Duration: 12 * time.Millisecond, UserAgent: "ü\x01", RequestID: "r1"}
	line := rec.AppendJSON(nil)
	e, err := DecodeJSON(line)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Time.Equal(rec.StartTime) || e.String("path") != rec.Path || e.Int("response_code") != 200 || e.String("user_agent") != "ü\x01" {
		t.Fatalf("decoded %+v", e)
	}
	if got := e.AppendJSON(nil); !bytes.Equal(got, line) {
		t.Fatalf("re-encoded\n%s\nwant\n%s", got, line)
	}
	if e.Message() != `GET /a?b="c" 200` {
		t.Errorf("message %q", e.Message())
	}
}

func TestDecodeJSONRejects(t *testing.T) {
	for _, in := range []string{``, `[]`, `{`, `{"a"}`, `{"a":1,}`, `{"a":tru}`, `{"a":"\x01"}`, `{"a":01}`, `{"a":1} x`, `{"a":"\q"}`, "{\"a\":\"\xff\"}", `{"a":[1,]}`, `{"a":-}`} {
		if _, err := DecodeJSON([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	for _, in := range []string{`{}`, ` { "a" : [ 1 , {"b":null} ] , "c":-1.5e+3 } `, `{"a":"\u00e9\ud83d\ude00"}`} {
		if _, err := DecodeJSON([]byte(in)); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// eventTime encodes Fluent Bit's EventTime extension (type 0).
type eventTime struct{ time.Time }

var _ msgpack.Marshaler = (*eventTime)(nil)

func (e *eventTime) MarshalMsgpack() ([]byte, error) {
	b := []byte{0xd7, 0x00}
	b = binary.BigEndian.AppendUint32(b, uint32(e.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(e.Nanosecond())), nil
}

// chunk builds a Fluent Bit chunk with the given event format: 1 is
// [ts, record], 2 is [[ts, metadata], record]; ts is an EventTime unless
// intTS.
func chunk(t testing.TB, format int, intTS bool, records ...map[string]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	ts := time.Unix(1700000000, 250e6)
	for _, r := range records {
		var tsv any = &eventTime{ts}
		if intTS {
			tsv = ts.Unix()
		}
		var ev any = []any{tsv, r}
		if format == 2 {
			ev = []any{[]any{tsv, map[string]any{"otlp": "x"}}, r}
		}
		if err := enc.Encode(ev); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestDecodeMsgpackBothFormats(t *testing.T) {
	rec := map[string]any{"request_id": "r1", "response_code": 503, "nested": map[string]any{"f": 1.5, "b": []byte("hi"), "ok": true, "n": nil}, "neg": -3}
	for _, format := range []int{1, 2} {
		for _, intTS := range []bool{false, true} {
			var got []string
			var times []time.Time
			err := DecodeMsgpack(chunk(t, format, intTS, rec, rec), func(e *Entry) error {
				got = append(got, string(e.AppendJSON(nil)))
				times = append(times, e.Time)
				return nil
			})
			if err != nil {
				t.Fatalf("format %d int %v: %v", format, intTS, err)
			}
			if len(got) != 2 {
				t.Fatalf("format %d: %d events", format, len(got))
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(got[0]), &m); err != nil {
				t.Fatalf("not JSON: %s", got[0])
			}
			if m["request_id"] != "r1" || m["response_code"] != 503.0 || m["neg"] != -3.0 || m["nested"].(map[string]any)["b"] != "aGk=" {
				t.Errorf("decoded %s", got[0])
			}
			want := time.Unix(1700000000, 250e6)
			if intTS {
				want = time.Unix(1700000000, 0)
			}
			if !times[0].Equal(want) {
				t.Errorf("format %d int %v: time %v want %v", format, intTS, times[0], want)
			}
		}
	}
}

func TestDecodeMsgpackTailLogLine(t *testing.T) {
	line := string((&accesslog.Record{StartTime: time.Unix(1600000000, 0), Method: "POST", RequestID: "x"}).AppendJSON(nil))
	var got *Entry
	err := DecodeMsgpack(chunk(t, 1, false, map[string]any{"log": line}), func(e *Entry) error {
		c := *e
		c.Fields = append([]Field(nil), e.Fields...)
		got = &c
		return nil
	})
	if err != nil || got == nil {
		t.Fatal(err)
	}
	if got.String("method") != "POST" || !got.Time.Equal(time.Unix(1600000000, 0)) {
		t.Errorf("got %s at %v", got.AppendJSON(nil), got.Time)
	}
}

func TestDecodeMsgpackTruncated(t *testing.T) {
	c := chunk(t, 2, false, map[string]any{"a": strings.Repeat("x", 100)})
	for i := 0; i < len(c); i++ {
		if err := DecodeMsgpack(c[:i], func(*Entry) error { return nil }); err == nil && i > 0 {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add((&accesslog.Record{Method: "GET", Path: "/x"}).AppendJSON(nil))
	f.Add([]byte(`{"a":[1,{"b":"\u00e9"}],"c":null}`))
	f.Add([]byte(`{"authorization":"Bearer x","request_headers":{"Cookie":"c"}}`))
	r := newRedactor(RedactOptions{QueryParams: []string{"k"}})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeJSON(b)
		if err != nil {
			return
		}
		r.apply(&e)
		out := e.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("decoded %q re-encodes to invalid JSON %q", b, out)
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
	})
}

func FuzzDecodeMsgpack(f *testing.F) {
	f.Add(chunk(f, 1, false, map[string]any{"a": 1, "b": "x"}))
	f.Add(chunk(f, 2, true, map[string]any{"log": `{"x":1}`}))
	f.Add(chunk(f, 2, false, map[string]any{"m": map[string]any{"k": []any{1.5, nil, true}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = DecodeMsgpack(b, func(e *Entry) error {
			if out := e.AppendJSON(nil); !json.Valid(out) {
				t.Fatalf("msgpack %x transcodes to invalid JSON %q", b, out)
			}
			return nil
		})
		inPlace, copied, err := framesBothWays(t, b)
		if err == nil && !bytes.Equal(inPlace, copied) {
			t.Fatalf("msgpack %x: frames in place\n%q\nby copy\n%q", b, inPlace, copied)
		}
	})
}

// framesBothWays returns the queue frames IngestMsgpack's path writes for
// a chunk (each record decoded into the frame buffer and finished in
// place) and those of the copying path (the decoded entry encoded anew),
// through a pipeline that enriches (gateway id, host, a label) and
// redacts (headers, a field, query parameters).
func framesBothWays(t testing.TB, data []byte) (inPlace, copied []byte, err error) {
	p := &Pipeline{
		redact: newRedactor(RedactOptions{Headers: []string{"X-Api-Key"}, Fields: []string{"secret"}, QueryParams: []string{"sig"}}),
		enrich: newEnricher("gw-1", "host-1", map[string]string{"env": "prod"}),
	}
	var a, b scratch
	err = decodeMsgpackInto(data, &a.buf, frameReserve, func(e *Entry, sp *span) error {
		p.processInto(&a, e, sp)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := DecodeMsgpack(data, func(e *Entry) error {
		p.processInto(&b, e, nil)
		return nil
	}); err != nil {
		t.Fatalf("decodes in place but not by copy: %v", err)
	}
	if a.n != b.n {
		t.Fatalf("%d records in place, %d by copy", a.n, b.n)
	}
	return a.buf, b.buf, nil
}

// TestMsgpackFramesInPlace: a record finished in place is byte for byte
// the record encoded anew, whatever enrichment and redaction changed.
func TestMsgpackFramesInPlace(t *testing.T) {
	recs := []map[string]any{
		{"method": "GET", "path": "/a?sig=x&b=1", "response_code": 200, "user_agent": strings.Repeat("u", 300)},
		{"authorization": "Bearer t", "method": "POST", "path": "/p", "response_code": 503},
		{"method": "GET", "x_api_key": "k", "path": "/q", "secret": "s", "gateway_id": nil, "host": "h"},
		{"gateway_id": nil, "request_headers": map[string]any{"Cookie": "c", "Accept": "*/*"}, "path": "/n"},
		{"log": `{"method":"GET","path":"/embedded?sig=1","response_code":201}`, "stream": "stdout"},
		{},
		{"env": "dev", "nested": map[string]any{"a": []any{1, "x\"y", nil}}, "method": "DELETE"},
	}
	for format := 1; format <= 2; format++ {
		data := chunk(t, format, format == 2, recs...)
		inPlace, copied, err := framesBothWays(t, data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(inPlace, copied) {
			t.Fatalf("format %d: in place\n%q\nby copy\n%q", format, inPlace, copied)
		}
		// And the frames read back as the records: redacted, enriched.
		q, err := queue.Open(queue.Options{Dir: t.TempDir(), Fsync: queue.FsyncNever})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.AppendFrames(inPlace); err != nil {
			t.Fatal(err)
		}
		items, _, err := q.Read(100, 1<<20)
		if err != nil || len(items) != len(recs) {
			t.Fatalf("read %d items: %v", len(items), err)
		}
		for i, it := range items {
			ev, ok := decodeItem(it)
			if !ok || !json.Valid(ev.JSON) {
				t.Fatalf("item %d: %q", i, it)
			}
			j := string(ev.JSON)
			if strings.Contains(j, "Bearer") || strings.Contains(j, `"k"`) || strings.Contains(j, `"s"`) || strings.Contains(j, `sig=x`) || strings.Contains(j, `"c"`) || !strings.Contains(j, `"gateway_id":"gw-1"`) {
				t.Errorf("item %d not redacted/enriched: %s", i, j)
			}
		}
		if ev, _ := decodeItem(items[0]); string(ev.Message) != "GET /a?sig=REDACTED&b=1 200" {
			t.Errorf("message %q", ev.Message)
		}
		q.Close()
	}
}
