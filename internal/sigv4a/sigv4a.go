// Package sigv4a signs HTTP requests with AWS Signature Version 4A
// (AWS4-ECDSA-P256-SHA256), the multi-region variant of SigV4: the same
// canonical request, a credential scope without a region, the regions in
// a signed X-Amz-Region-Set header, and an ECDSA P-256 signature by a key
// derived from the access key pair. The AWS SDK for Go keeps its SigV4A
// signer internal, so this is our own, written from AWS's description
// and checked against the SDK's published test vectors.
package sigv4a

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Algorithm is the SigV4A algorithm name, in the string to sign and the
// Authorization header.
const Algorithm = "AWS4-ECDSA-P256-SHA256"

// RegionSetHeader carries the regions a SigV4A signature is valid in.
const RegionSetHeader = "X-Amz-Region-Set"

const (
	timeFormat  = "20060102T150405Z"
	shortFormat = "20060102"
)

// p256MinusTwo is n-2 for P-256: a KDF candidate at or above it is
// refused, so that candidate+1 is a private key in [1, n-1].
var p256MinusTwo = func() []byte {
	n := new(big.Int).Sub(elliptic.P256().Params().N, big.NewInt(2))
	return n.FillBytes(make([]byte, 32))
}()

// DeriveKey derives the ECDSA P-256 key of an access key pair, as AWS
// does (FIPS 186-4 B.4.2 with NIST SP 800-108's KDF in counter mode,
// HMAC-SHA256 keyed by "AWS4A"+secret, label the algorithm name, context
// the access key id and a one-byte external counter bumped while the
// candidate is ≥ n-2; the private key is the candidate plus one).
func DeriveKey(accessKeyID, secretAccessKey string) (*ecdsa.PrivateKey, error) {
	key := []byte("AWS4A" + secretAccessKey)
	for counter := 1; counter <= 0xff; counter++ {
		ctx := append([]byte(accessKeyID), byte(counter))
		cand := kdfCounter(key, []byte(Algorithm), ctx, 256)
		if lessThan(cand, p256MinusTwo) {
			d := new(big.Int).SetBytes(cand)
			d.Add(d, big.NewInt(1))
			return ecdsa.ParseRawPrivateKey(elliptic.P256(), d.FillBytes(make([]byte, 32)))
		}
	}
	return nil, errors.New("sigv4a: no key candidate below n-2 in 255 rounds")
}

// kdfCounter is SP 800-108's KDF in counter mode with HMAC-SHA256 as the
// PRF: blocks HMAC(key, i ‖ label ‖ 0x00 ‖ context ‖ L), i and L 32-bit
// big-endian, concatenated and cut to L bits.
func kdfCounter(key, label, context []byte, bits int) []byte {
	var fixed []byte
	fixed = append(fixed, label...)
	fixed = append(fixed, 0)
	fixed = append(fixed, context...)
	fixed = binary.BigEndian.AppendUint32(fixed, uint32(bits))
	var out []byte
	mac := hmac.New(sha256.New, key)
	for i := uint32(1); len(out)*8 < bits; i++ {
		mac.Reset()
		var ib [4]byte
		binary.BigEndian.PutUint32(ib[:], i)
		mac.Write(ib[:])
		mac.Write(fixed)
		out = mac.Sum(out)
	}
	return out[:bits/8]
}

// lessThan compares two equal-length big-endian numbers in constant time
// (the candidate is secret).
func lessThan(a, b []byte) bool {
	lt, gt := 0, 0
	for i := range a {
		x, y := int(a[i]), int(b[i])
		undecided := 1 ^ (lt | gt)
		lt |= undecided & subtle.ConstantTimeLessOrEq(x+1, y)
		gt |= undecided & subtle.ConstantTimeLessOrEq(y+1, x)
	}
	return lt == 1
}

// keyCache keeps the last derived keys: derivation is a scalar
// multiplication, and the credentials rarely change.
var keyCache struct {
	sync.Mutex
	m map[[32]byte]*ecdsa.PrivateKey
}

func cachedKey(id, secret string) (*ecdsa.PrivateKey, error) {
	h := sha256.Sum256([]byte(id + "\x00" + secret))
	keyCache.Lock()
	k := keyCache.m[h]
	keyCache.Unlock()
	if k != nil {
		return k, nil
	}
	k, err := DeriveKey(id, secret)
	if err != nil {
		return nil, err
	}
	keyCache.Lock()
	if keyCache.m == nil || len(keyCache.m) > 64 {
		keyCache.m = map[[32]byte]*ecdsa.PrivateKey{}
	}
	keyCache.m[h] = k
	keyCache.Unlock()
	return k, nil
}

// Request is what is signed: the request exactly as it is sent.
type Request struct {
	Method string
	// Host is the Host header sent.
	Host string
	// Path is the path as sent (escaped), RawQuery the query.
	Path, RawQuery string
	// Header holds the headers to sign (canonical or any case; the names
	// are lower-cased); those AWS never signs are left out.
	Header map[string][]string
	// ContentLength is signed when positive.
	ContentLength int64
}

// Params are the signature's parameters.
type Params struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Service                                    string
	// RegionSet are the regions (or wildcards, "*") the signature is
	// valid in.
	RegionSet []string
	// PayloadHash is the body's hex SHA-256 or UNSIGNED-PAYLOAD.
	PayloadHash string
	// EscapePath escapes the path again (every service but S3).
	EscapePath bool
	Time       time.Time
}

// ignored are the headers AWS's signers leave out of a signature: they
// change in transit.
var ignored = map[string]bool{"authorization": true, "user-agent": true, "x-amzn-trace-id": true, "expect": true, "transfer-encoding": true}

// Sign returns the headers that authenticate r: Authorization,
// X-Amz-Date, X-Amz-Region-Set and, with a session token,
// X-Amz-Security-Token. They must be sent with r's own headers.
func Sign(r Request, p Params) (map[string]string, error) {
	key, err := cachedKey(p.AccessKeyID, p.SecretAccessKey)
	if err != nil {
		return nil, err
	}
	at := p.Time.UTC()
	out := map[string]string{
		"X-Amz-Date":    at.Format(timeFormat),
		RegionSetHeader: strings.Join(p.RegionSet, ","),
	}
	if p.SessionToken != "" {
		out["X-Amz-Security-Token"] = p.SessionToken
	}
	hdr := make(map[string][]string, len(r.Header)+len(out))
	for k, vs := range r.Header {
		hdr[k] = vs
	}
	for k := range hdr {
		if _, set := out[canonicalName(k)]; set {
			delete(hdr, k)
		}
	}
	for k, v := range out {
		hdr[k] = []string{v}
	}
	canonical, signed := CanonicalRequest(r.Method, r.Host, r.Path, r.RawQuery, hdr, r.ContentLength, p.PayloadHash, p.EscapePath)
	scope := Scope(at, p.Service)
	sts := StringToSign(at, scope, canonical)
	digest := sha256.Sum256([]byte(sts))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("sigv4a: signing: %w", err)
	}
	out["Authorization"] = Algorithm + " Credential=" + p.AccessKeyID + "/" + scope + ", SignedHeaders=" + signed + ", Signature=" + hex.EncodeToString(sig)
	return out, nil
}

// canonicalName is the canonical form of a header name the signer sets.
func canonicalName(k string) string {
	switch strings.ToLower(k) {
	case "x-amz-date":
		return "X-Amz-Date"
	case "x-amz-region-set":
		return RegionSetHeader
	case "x-amz-security-token":
		return "X-Amz-Security-Token"
	}
	return k
}

// Scope is SigV4A's credential scope: the day, the service and
// "aws4_request" (no region: the region set is a signed header).
func Scope(at time.Time, service string) string {
	return at.UTC().Format(shortFormat) + "/" + service + "/aws4_request"
}

// StringToSign is the algorithm, the time, the scope and the canonical
// request's hex SHA-256, one a line.
func StringToSign(at time.Time, scope, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return Algorithm + "\n" + at.UTC().Format(timeFormat) + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
}

// CanonicalRequest is SigV4's canonical request (the same in SigV4A) and
// its signed-header list: method, URI, sorted query, the signed headers
// lower-cased and sorted with their values trimmed and folded, the list,
// and the payload hash.
func CanonicalRequest(method, host, path, rawQuery string, header map[string][]string, contentLength int64, payloadHash string, escapePath bool) (canonical, signedHeaders string) {
	vals := map[string][]string{"host": {host}}
	if contentLength > 0 {
		vals["content-length"] = []string{strconv.FormatInt(contentLength, 10)}
	}
	for k, vs := range header {
		lk := strings.ToLower(k)
		if ignored[lk] || lk == "host" || lk == "content-length" {
			continue
		}
		vals[lk] = append(vals[lk], vs...)
	}
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(method)
	b.WriteByte('\n')
	uri := path
	if uri == "" {
		uri = "/"
	}
	if escapePath {
		uri = escapeURI(uri)
	}
	b.WriteString(uri)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(rawQuery))
	b.WriteByte('\n')
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(':')
		for i, v := range vals[n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(foldSpaces(v))
		}
		b.WriteByte('\n')
	}
	signedHeaders = strings.Join(names, ";")
	b.WriteByte('\n')
	b.WriteString(signedHeaders)
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String(), signedHeaders
}

// canonicalQuery sorts the query by name, then value, each escaped as
// AWS wants (space as %20).
func canonicalQuery(raw string) string {
	q, _ := url.ParseQuery(raw)
	for _, vs := range q {
		sort.Strings(vs)
	}
	return strings.ReplaceAll(q.Encode(), "+", "%20")
}

// escapeURI escapes every byte of the path but the unreserved ones and
// '/', a '%' included: AWS signs the already-escaped path escaped again.
func escapeURI(p string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '/' || c == '-' || c == '_' || c == '.' || c == '~' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

// foldSpaces trims a header value's spaces and folds runs of them to one.
func foldSpaces(v string) string {
	v = strings.Trim(v, " ")
	if !strings.Contains(v, "  ") {
		return strings.TrimSpace(v)
	}
	var b strings.Builder
	space := false
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b.WriteByte(v[i])
	}
	return strings.TrimSpace(b.String())
}

// Verify checks a SigV4A signature (hex DER) over the string to sign with
// the public key of the access key pair: what a service does.
func Verify(accessKeyID, secretAccessKey, stringToSign, signatureHex string) error {
	key, err := cachedKey(accessKeyID, secretAccessKey)
	if err != nil {
		return err
	}
	sig, err := hex.DecodeString(signatureHex)
	if err != nil {
		return fmt.Errorf("sigv4a: signature is not hex: %w", err)
	}
	digest := sha256.Sum256([]byte(stringToSign))
	if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
		return errors.New("sigv4a: signature does not verify")
	}
	return nil
}
