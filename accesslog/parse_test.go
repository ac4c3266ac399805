package accesslog

import (
	"testing"
	"time"
)

func TestParseJSONRoundTrip(t *testing.T) {
	in := Record{
		StartTime: time.Date(2026, 11, 26, 10, 0, 0, 123e6, time.UTC), Method: "GET", Path: "/a?b=1",
		Protocol: "HTTP/1.1", ResponseCode: 502, ResponseFlags: "UF", BytesReceived: 3, BytesSent: 90,
		Duration: 12 * time.Millisecond, UpstreamServiceTime: 7 * time.Millisecond, UserAgent: "ua\"x",
		RequestID: "r1", Authority: "h", UpstreamHost: "127.0.0.1:1", UpstreamCluster: "default/s",
		DownstreamRemoteAddress: "127.0.0.1:2", APIInstance: "default/a", Route: "r", GatewayID: "g",
		TraceID: "0af7651916cd43dd8448eb211c80319c", Policy: "cors-flex", PolicyOutcome: "allowed",
	}
	out, err := ParseJSON(in.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

func TestParseJSONEnvoyShapes(t *testing.T) {
	line := `{"start_time":"2026-11-26T10:00:00.000Z","method":"POST","response_code":200,"response_flags":"-","duration":3,"upstream_service_time":"2","api_instance":null,"bytes_sent":10}`
	r, err := ParseJSON([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if r.ResponseFlags != "" || r.UpstreamServiceTime != 2*time.Millisecond || r.APIInstance != "" || r.BytesSent != 10 || r.Duration != 3*time.Millisecond {
		t.Errorf("parsed %+v", r)
	}
	if _, err := ParseJSON([]byte(`{"start_time":"yesterday"}`)); err == nil {
		t.Error("bad start_time accepted")
	}
	if _, err := ParseJSON([]byte(`not json`)); err == nil {
		t.Error("non-JSON accepted")
	}
}
