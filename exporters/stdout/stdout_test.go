package stdout

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters"
)

func TestFormats(t *testing.T) {
	evs := []exporters.Event{
		{Time: time.Unix(1700000000, 0), Kind: exporters.Access, JSON: []byte(`{"path":"/a"}`)},
		{Time: time.Unix(1700000001, 0), Kind: exporters.Runtime, JSON: []byte(`{}`)},
	}
	for _, tc := range []struct {
		params map[string]string
		want   string
	}{
		{nil, "[0] flexgw.access: [1700000000.000000000, {\"path\":\"/a\"}]\n[1] flexgw.runtime: [1700000001.000000000, {}]\n"},
		{map[string]string{"format": "json_lines"}, "{\"date\":1700000000.000000,\"path\":\"/a\"}\n{\"date\":1700000001.000000}\n"},
		{map[string]string{"format": "json_lines", "json_date_key": "false"}, "{\"path\":\"/a\"}\n{}\n"},
		{map[string]string{"format": "json", "json_date_key": "ts", "json_date_format": "epoch"}, "[{\"ts\":1700000000,\"path\":\"/a\"},{\"ts\":1700000001}]\n"},
	} {
		var out bytes.Buffer
		x, err := New("s", tc.params, exporters.Settings{Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Export(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.want {
			t.Errorf("%v:\n got %q\nwant %q", tc.params, out.String(), tc.want)
		}
		if tc.params["format"] == "json" && !json.Valid(bytes.TrimSpace(out.Bytes())) {
			t.Errorf("json format is not one JSON document: %s", out.String())
		}
	}
	if _, err := New("s", map[string]string{"format": "yaml"}, exporters.Settings{}); err == nil || !strings.Contains(err.Error(), "yaml") {
		t.Errorf("bad format: %v", err)
	}
}
