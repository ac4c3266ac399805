package logpipe

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/internal/jsonstr"
)

// ErrMsgpack is wrapped by every msgpack decoding error.
var ErrMsgpack = errors.New("invalid msgpack")

// DecodeMsgpack decodes a Fluent Bit chunk: concatenated events in either
// event format, [ts, record] or [[ts, metadata], record], with ts an
// EventTime (ext type 0) or an integer / float of epoch seconds. Values
// are transcoded straight to JSON. fn is called per event; the entry is
// only valid during the call. A record whose only useful field is a "log"
// (or "message") string holding a JSON object — Fluent Bit's tail input
// without a parser — is decoded as that access-log line.
func DecodeMsgpack(data []byte, fn func(*Entry) error) error {
	var buf []byte
	return decodeMsgpackInto(data, &buf, 0, func(e *Entry, _ *span) error {
		err := fn(e)
		buf = buf[:0]
		return err
	})
}

// span is where decodeMsgpackInto wrote a record: reserved bytes from
// start, then the JSON object from obj — '{' and the members, without
// the closing '}' — to end, field i's value at vals[2i]:vals[2i+1].
type span struct {
	start, obj, end int
	vals            []int
}

// decodeMsgpackInto is DecodeMsgpack writing each record into *buf as
// it decodes: reserve bytes (for the caller's headers), then the record
// as the text of a JSON object, whose values the entry's fields alias.
// The caller (fn) finishes the object or truncates *buf. A record decoded
// from an embedded line is not in *buf: fn gets a nil span.
func decodeMsgpackInto(data []byte, buf *[]byte, reserve int, fn func(*Entry, *span) error) error {
	d := mpDecoder{b: data}
	var e Entry
	var sp span
	var keys, prev []string
	for d.i < len(d.b) {
		n, err := d.arrayLen()
		if err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("%w: event is an array of %d, want 2", ErrMsgpack, n)
		}
		var ts time.Time
		if d.peekArray() {
			hn, err := d.arrayLen()
			if err != nil {
				return err
			}
			if hn < 1 {
				return fmt.Errorf("%w: empty event header", ErrMsgpack)
			}
			if ts, err = d.timestamp(); err != nil {
				return err
			}
			for k := 1; k < hn; k++ { // metadata: not forwarded
				if err := d.skip(0); err != nil {
					return err
				}
			}
		} else if ts, err = d.timestamp(); err != nil {
			return err
		}
		mn, err := d.mapLen()
		if err != nil {
			return err
		}
		b := *buf
		sp.start = len(b)
		b = append(b, make([]byte, reserve)...)
		sp.obj = len(b)
		b = append(b, '{')
		e = Entry{Kind: exporters.Access, Fields: e.Fields[:0]}
		// Values are sliced once the record is complete: a growing buffer
		// must not leave a field pointing at old memory.
		sp.vals, keys = sp.vals[:0], keys[:0]
		for k := 0; k < mn; k++ {
			key, err := d.topKey(k, prev)
			if err != nil {
				*buf = b[:sp.start]
				return err
			}
			if k > 0 {
				b = append(b, ',')
			}
			b = appendKey(b, key)
			start := len(b)
			if b, err = d.json(b, 0); err != nil {
				*buf = b[:sp.start]
				return err
			}
			keys = append(keys, key)
			sp.vals = append(sp.vals, start, len(b))
		}
		sp.end = len(b)
		*buf = b
		for k, key := range keys {
			e.Fields = append(e.Fields, Field{Key: key, Val: b[sp.vals[2*k]:sp.vals[2*k+1]]})
		}
		keys, prev = prev, keys
		if line := embeddedLine(&e); line != nil {
			if inner, err := DecodeJSON(line); err == nil {
				*buf = b[:sp.start]
				inner.Time = entryTime(&inner, ts)
				if err := fn(&inner, nil); err != nil {
					return err
				}
				continue
			}
		}
		e.Time = entryTime(&e, ts)
		if err := fn(&e, &sp); err != nil {
			return err
		}
	}
	return nil
}

// embeddedLine returns the JSON object held in a "log" or "message" string
// when that is the record's only field besides stream/time metadata.
func embeddedLine(e *Entry) []byte {
	var v []byte
	for _, f := range e.Fields {
		switch f.Key {
		case "log", "message":
			v = f.Val
		case "stream", "time", "_p":
		default:
			return nil
		}
	}
	if len(v) < 4 || v[0] != '"' || v[1] != '{' {
		return nil
	}
	s, err := unquote(v)
	if err != nil {
		return nil
	}
	return []byte(s)
}

type mpDecoder struct {
	b    []byte
	i    int
	junk []byte
}

func (d *mpDecoder) need(n int) error {
	if n < 0 || len(d.b)-d.i < n {
		return fmt.Errorf("%w: truncated at offset %d", ErrMsgpack, d.i)
	}
	return nil
}

func (d *mpDecoder) u8() (byte, error) {
	if err := d.need(1); err != nil {
		return 0, err
	}
	c := d.b[d.i]
	d.i++
	return c, nil
}

func (d *mpDecoder) uint(n int) (uint64, error) {
	if err := d.need(n); err != nil {
		return 0, err
	}
	var v uint64
	switch n {
	case 1:
		v = uint64(d.b[d.i])
	case 2:
		v = uint64(binary.BigEndian.Uint16(d.b[d.i:]))
	case 4:
		v = uint64(binary.BigEndian.Uint32(d.b[d.i:]))
	case 8:
		v = binary.BigEndian.Uint64(d.b[d.i:])
	}
	d.i += n
	return v, nil
}

func (d *mpDecoder) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)-d.i) {
		return nil, fmt.Errorf("%w: truncated at offset %d", ErrMsgpack, d.i)
	}
	v := d.b[d.i : d.i+int(n)]
	d.i += int(n)
	return v, nil
}

func (d *mpDecoder) peekArray() bool {
	if d.i >= len(d.b) {
		return false
	}
	c := d.b[d.i]
	return c&0xf0 == 0x90 || c == 0xdc || c == 0xdd
}

// lenOf reads a container/str header and returns its length.
func (d *mpDecoder) container(fix, fixMask byte, w16, w32 byte, what string) (int, error) {
	c, err := d.u8()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&^fixMask == fix:
		n = uint64(c & fixMask)
	case c == w16:
		n, err = d.uint(2)
	case c == w32:
		n, err = d.uint(4)
	default:
		return 0, fmt.Errorf("%w: expected %s at offset %d, got 0x%02x", ErrMsgpack, what, d.i-1, c)
	}
	if err != nil {
		return 0, err
	}
	// Every element takes at least one byte: bound hostile lengths.
	if n > uint64(len(d.b)-d.i) {
		return 0, fmt.Errorf("%w: %s of %d elements in %d bytes", ErrMsgpack, what, n, len(d.b)-d.i)
	}
	return int(n), nil
}

func (d *mpDecoder) arrayLen() (int, error) { return d.container(0x90, 0x0f, 0xdc, 0xdd, "array") }
func (d *mpDecoder) mapLen() (int, error)   { return d.container(0x80, 0x0f, 0xde, 0xdf, "map") }

// timestamp reads an EventTime (ext 0: uint32 seconds, uint32 nanoseconds),
// an integer or a float.
func (d *mpDecoder) timestamp() (time.Time, error) {
	if err := d.need(1); err != nil {
		return time.Time{}, err
	}
	c := d.b[d.i]
	switch {
	case c == 0xd7: // fixext 8
		if err := d.need(10); err != nil {
			return time.Time{}, err
		}
		sec := binary.BigEndian.Uint32(d.b[d.i+2:])
		nsec := binary.BigEndian.Uint32(d.b[d.i+6:])
		d.i += 10
		return time.Unix(int64(sec), int64(nsec)%1e9), nil
	case c == 0xc7: // ext 8 with length 8
		if err := d.need(11); err != nil {
			return time.Time{}, err
		}
		if d.b[d.i+1] != 8 {
			return time.Time{}, fmt.Errorf("%w: EventTime of length %d", ErrMsgpack, d.b[d.i+1])
		}
		sec := binary.BigEndian.Uint32(d.b[d.i+3:])
		nsec := binary.BigEndian.Uint32(d.b[d.i+7:])
		d.i += 11
		return time.Unix(int64(sec), int64(nsec)%1e9), nil
	case c == 0xca || c == 0xcb:
		var f float64
		if c == 0xca {
			d.i++
			v, err := d.uint(4)
			if err != nil {
				return time.Time{}, err
			}
			f = float64(math.Float32frombits(uint32(v)))
		} else {
			d.i++
			v, err := d.uint(8)
			if err != nil {
				return time.Time{}, err
			}
			f = math.Float64frombits(v)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
			return time.Time{}, fmt.Errorf("%w: timestamp %v", ErrMsgpack, f)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	default:
		n, ok, err := d.integer()
		if err != nil {
			return time.Time{}, err
		}
		if !ok {
			return time.Time{}, fmt.Errorf("%w: timestamp at offset %d is neither EventTime nor a number", ErrMsgpack, d.i)
		}
		return time.Unix(n, 0), nil
	}
}

// integer reads any msgpack integer; ok is false (nothing consumed) for
// other types.
func (d *mpDecoder) integer() (int64, bool, error) {
	if err := d.need(1); err != nil {
		return 0, false, err
	}
	c := d.b[d.i]
	switch {
	case c <= 0x7f:
		d.i++
		return int64(c), true, nil
	case c >= 0xe0:
		d.i++
		return int64(int8(c)), true, nil
	case c >= 0xcc && c <= 0xcf:
		d.i++
		v, err := d.uint(1 << (c - 0xcc))
		if c == 0xcf && v > math.MaxInt64 {
			return math.MaxInt64, true, err
		}
		return int64(v), true, err
	case c >= 0xd0 && c <= 0xd3:
		d.i++
		n := 1 << (c - 0xd0)
		v, err := d.uint(n)
		switch n {
		case 1:
			return int64(int8(v)), true, err
		case 2:
			return int64(int16(v)), true, err
		case 4:
			return int64(int32(v)), true, err
		}
		return int64(v), true, err
	}
	return 0, false, nil
}

// topKey reads the key of a record's k-th field. The records of a chunk
// mostly repeat one shape, so the previous record's k-th key (prev[k]) is
// tried first: the key costs a compare, not a map lookup or a string, and
// later stages see the same string again (redaction caches by it).
func (d *mpDecoder) topKey(k int, prev []string) (string, error) {
	if k < len(prev) && d.i < len(d.b) {
		c, n, hdr := d.b[d.i], -1, 1
		switch {
		case c&0xe0 == 0xa0:
			n = int(c & 0x1f)
		case c == 0xd9 && d.i+1 < len(d.b):
			n, hdr = int(d.b[d.i+1]), 2
		}
		if n >= 0 && n <= len(d.b)-d.i-hdr {
			b := d.b[d.i+hdr : d.i+hdr+n]
			if string(b) == prev[k] {
				d.i += hdr + n
				return prev[k], nil
			}
			// Same keys in another order (a map re-encoded by a filter).
			for _, p := range prev {
				if string(b) == p {
					d.i += hdr + n
					return p, nil
				}
			}
		}
	}
	return d.key()
}

// key reads a map key; non-string keys are rendered as JSON text.
func (d *mpDecoder) key() (string, error) {
	if err := d.need(1); err != nil {
		return "", err
	}
	c := d.b[d.i]
	if c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb || c == 0xc4 || c == 0xc5 || c == 0xc6 {
		d.i++
		n, err := d.strLen(c)
		if err != nil {
			return "", err
		}
		b, err := d.bytes(n)
		if k, ok := knownKeys[string(b)]; ok {
			return k, err
		}
		return string(b), err
	}
	j, err := d.json(nil, 0)
	return string(j), err
}

func (d *mpDecoder) strLen(c byte) (uint64, error) {
	switch {
	case c&0xe0 == 0xa0:
		return uint64(c & 0x1f), nil
	case c == 0xd9 || c == 0xc4:
		return d.uint(1)
	case c == 0xda || c == 0xc5:
		return d.uint(2)
	default:
		return d.uint(4)
	}
}

// json transcodes one msgpack value to JSON, appending to b.
func (d *mpDecoder) json(b []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return b, fmt.Errorf("%w: nested too deep", ErrMsgpack)
	}
	if n, ok, err := d.integer(); ok || err != nil {
		return strconv.AppendInt(b, n, 10), err
	}
	c, err := d.u8()
	if err != nil {
		return b, err
	}
	switch {
	case c == 0xc0:
		return append(b, "null"...), nil
	case c == 0xc2:
		return append(b, "false"...), nil
	case c == 0xc3:
		return append(b, "true"...), nil
	case c == 0xcf: // uint64 above MaxInt64 (integer() handled the rest)
		return b, fmt.Errorf("%w: unexpected 0x%02x", ErrMsgpack, c)
	case c == 0xca || c == 0xcb:
		var f float64
		if c == 0xca {
			v, err := d.uint(4)
			if err != nil {
				return b, err
			}
			f = float64(math.Float32frombits(uint32(v)))
		} else {
			v, err := d.uint(8)
			if err != nil {
				return b, err
			}
			f = math.Float64frombits(v)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(b, "null"...), nil
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64), nil
	case c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb:
		n, err := d.strLen(c)
		if err != nil {
			return b, err
		}
		s, err := d.bytes(n)
		if err != nil {
			return b, err
		}
		return jsonstr.AppendBytes(b, s), nil
	case c == 0xc4 || c == 0xc5 || c == 0xc6: // bin: base64 string
		n, err := d.strLen(c)
		if err != nil {
			return b, err
		}
		s, err := d.bytes(n)
		if err != nil {
			return b, err
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, s)
		return append(b, '"'), nil
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		d.i--
		n, err := d.arrayLen()
		if err != nil {
			return b, err
		}
		b = append(b, '[')
		for k := 0; k < n; k++ {
			if k > 0 {
				b = append(b, ',')
			}
			if b, err = d.json(b, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		d.i--
		n, err := d.mapLen()
		if err != nil {
			return b, err
		}
		b = append(b, '{')
		for k := 0; k < n; k++ {
			if k > 0 {
				b = append(b, ',')
			}
			key, err := d.key()
			if err != nil {
				return b, err
			}
			b = jsonstr.Append(b, key)
			b = append(b, ':')
			if b, err = d.json(b, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case c == 0xd4 || c == 0xd5 || c == 0xd6 || c == 0xd7 || c == 0xd8 || c == 0xc7 || c == 0xc8 || c == 0xc9:
		var n uint64
		switch c {
		case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
			n = 1 << (c - 0xd4)
		case 0xc7:
			n, err = d.uint(1)
		case 0xc8:
			n, err = d.uint(2)
		default:
			n, err = d.uint(4)
		}
		if err != nil {
			return b, err
		}
		typ, err := d.u8()
		if err != nil {
			return b, err
		}
		data, err := d.bytes(n)
		if err != nil {
			return b, err
		}
		if typ == 0 && n == 8 { // EventTime nested in a record
			sec := binary.BigEndian.Uint32(data)
			nsec := binary.BigEndian.Uint32(data[4:])
			return strconv.AppendFloat(b, float64(sec)+float64(nsec%1e9)/1e9, 'f', 9, 64), nil
		}
		return append(b, "null"...), nil
	}
	return b, fmt.Errorf("%w: unknown type 0x%02x at offset %d", ErrMsgpack, c, d.i-1)
}

// skip discards one value (transcoded into a buffer the decoder reuses:
// every record of Fluent Bit's newer event format has a metadata map).
func (d *mpDecoder) skip(depth int) error {
	var err error
	d.junk, err = d.json(d.junk[:0], depth)
	return err
}
