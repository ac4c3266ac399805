package h2guard

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/net/http2"
)

// TestParserFollowsFrames: frame headers (and RST_STREAM error codes) are
// found however the byte stream is split between reads.
func TestParserFollowsFrames(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&buf, nil)
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte("abc"), EndHeaders: true})
	_ = fr.WriteData(1, false, bytes.Repeat([]byte("x"), 1000))
	_ = fr.WriteRSTStream(1, http2.ErrCodeProtocol)
	_ = fr.WritePing(false, [8]byte{1})
	_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
	want := "4/0 1/1 0/1 3/1:1 6/0 3/3:8 "
	stream := buf.Bytes()
	for _, split := range []int{1, 2, 5, 9, 13, 64, len(stream)} {
		var got string
		p := parser{preface: len(clientPreface), onFrame: func(typ, _ byte, id uint32, payload []byte) {
			got += fmt.Sprintf("%d/%d", typ, id)
			if typ == frameRSTStream {
				got += fmt.Sprintf(":%d", payload[3])
			}
			got += " "
		}}
		for b := stream; len(b) > 0; {
			k := min(split, len(b))
			p.feed(b[:k])
			b = b[k:]
		}
		if got != want || !p.atBoundary() {
			t.Errorf("split %d: frames %q (at boundary %v), want %q", split, got, p.atBoundary(), want)
		}
	}
}
