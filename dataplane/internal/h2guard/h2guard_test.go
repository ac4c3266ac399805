package h2guard

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/net/http2"
	"net/netip"
	"time"
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

// TestPenaltyIsBounded: an attack from many addresses cannot grow the
// penalty table past maxPenalized; expired entries make room and are no
// longer blocked.
func TestPenaltyIsBounded(t *testing.T) {
	p := NewPenalty(time.Hour)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := 0; i < maxPenalized+100; i++ {
		p.add(addr(i))
	}
	if n := len(p.until); n != maxPenalized {
		t.Fatalf("table holds %d addresses, want the bound %d", n, maxPenalized)
	}
	if !p.Blocked(addr(0)) || p.Blocked(addr(maxPenalized+1)) {
		t.Fatal("the first addresses must stay penalised and the overflow not remembered")
	}
	if p.Blocked(netip.Addr{}) {
		t.Fatal("an unknown address is penalised")
	}
	short := NewPenalty(time.Nanosecond)
	short.add(addr(1))
	deadline := time.Now().Add(10 * time.Second)
	for short.Blocked(addr(1)) {
		if time.Now().After(deadline) {
			t.Fatal("a penalty never expires")
		}
	}
}
