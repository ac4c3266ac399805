package sigv4a

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The AWS SDK for Go's published SigV4A vectors (internal/v4a's tests):
// an access key pair, the public key it derives, and the SHA-256 of the
// string to sign of a DynamoDB request signed at the epoch.
const (
	vecAccessKey = "AKISORANDOMAASORANDOM"
	vecSecretKey = "q+jcrXGc+0zWN6uzclKVhvMmUsIfRPa4rlRandom"
	vecX         = "15D242CEEBF8D8169FD6A8B5A746C41140414C3B07579038DA06AF89190FFFCB"
	vecY         = "515242CEDD82E94799482E4C0514B505AFCCF2C0C98D6A553BF539F424C5EC0"
	vecSTSHash   = "4ba7d0482cf4d5450cefdc067a00de1a4a715e444856fa3e1d85c35fb34d9730"
	emptySHA256  = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

func vectorPublicKey(t *testing.T) *ecdsa.PublicKey {
	x, _ := new(big.Int).SetString(vecX, 16)
	y, _ := new(big.Int).SetString(vecY, 16)
	pt := append([]byte{4}, x.FillBytes(make([]byte, 32))...)
	pt = append(pt, y.FillBytes(make([]byte, 32))...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestDeriveKeyMatchesTheSDKVector(t *testing.T) {
	k, err := DeriveKey(vecAccessKey, vecSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	if !k.PublicKey.Equal(vectorPublicKey(t)) {
		b, _ := k.PublicKey.Bytes()
		t.Fatalf("derived public key %X, want X=%s Y=%s", b, vecX, vecY)
	}
	// Another secret, another key.
	other, err := DeriveKey(vecAccessKey, vecSecretKey+"x")
	if err != nil || other.PublicKey.Equal(&k.PublicKey) {
		t.Fatalf("a different secret derived the same key (err %v)", err)
	}
}

// The SDK's TestSignHTTP request, signed by Sign: the string to sign must
// hash to the SDK's vector and the signature verify with the vector's
// public key.
func TestSignMatchesTheSDKVector(t *testing.T) {
	hdr := map[string][]string{
		"X-Amz-Target":                            {"prefix.Operation"},
		"Content-Type":                            {"application/x-amz-json-1.0"},
		"X-Amz-Meta-Other-Header":                 {"some-value=!@#$%^&* (+)"},
		"X-Amz-Meta-Other-Header_with_underscore": {"some-value=!@#$%^&* (+)", "some-value=!@#$%^&* (+)"},
		"User-Agent":                              {"foo"},
		"X-Amzn-Trace-Id":                         {"bar"},
		"Transfer-Encoding":                       {"qux"},
	}
	r := Request{Method: "POST", Host: "dynamodb.us-east-1.amazonaws.com", Path: "/bucket/key-._~,!@%23$%25^&*()", Header: hdr, ContentLength: 1024}
	p := Params{AccessKeyID: vecAccessKey, SecretAccessKey: vecSecretKey, SessionToken: "TOKEN", Service: "dynamodb",
		RegionSet: []string{"us-east-1"}, PayloadHash: emptySHA256, EscapePath: true, Time: time.Unix(0, 0)}
	out, err := Sign(r, p)
	if err != nil {
		t.Fatal(err)
	}
	auth := out["Authorization"]
	want := "AWS4-ECDSA-P256-SHA256 Credential=AKISORANDOMAASORANDOM/19700101/dynamodb/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-meta-other-header;x-amz-meta-other-header_with_underscore;x-amz-region-set;x-amz-security-token;x-amz-target, Signature="
	if !strings.HasPrefix(auth, want) {
		t.Fatalf("Authorization %q, want prefix %q", auth, want)
	}
	if out["X-Amz-Date"] != "19700101T000000Z" || out[RegionSetHeader] != "us-east-1" || out["X-Amz-Security-Token"] != "TOKEN" {
		t.Fatalf("headers %v", out)
	}
	sig, err := hex.DecodeString(strings.TrimPrefix(auth, want))
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := hex.DecodeString(vecSTSHash)
	if !ecdsa.VerifyASN1(vectorPublicKey(t), digest, sig) {
		t.Fatalf("the signature does not verify against the SDK's string-to-sign hash %s", vecSTSHash)
	}
}

// The canonical request is SigV4's: signing it HMAC-style must give the
// AWS SDK's own SigV4 signature for the same request, for escaped paths,
// queries, folded header values and both path modes.
func TestCanonicalRequestIsTheSDKs(t *testing.T) {
	cases := []struct {
		path, query string
		s3          bool
		hdr         http.Header
		length      int64
	}{
		{"/a%20b/c", "y=2&x=1&x=0&sp=a+b", false, http.Header{"X-Custom": {"  many   spaces  here "}}, 7},
		{"/bucket/key%2Fwith%25", "", true, http.Header{"Content-Type": {"text/plain"}, "X-Two": {"a", "b"}}, 0},
		{"", "empty=", false, http.Header{"User-Agent": {"ignored"}, "Expect": {"100-continue"}}, 3},
	}
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for i, c := range cases {
		req, _ := http.NewRequest("PUT", "http://svc.example:8080/", nil)
		req.URL.Opaque = "//svc.example:8080" + c.path
		req.URL.RawQuery = c.query
		req.Host = "svc.example:8080"
		req.ContentLength = c.length
		for k, v := range c.hdr {
			req.Header[k] = v
		}
		req.Header.Set("X-Amz-Date", at.Format(timeFormat))
		signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = c.s3 })
		if err := signer.SignHTTP(t.Context(), aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, req, emptySHA256, "svc", "eu-west-1", at); err != nil {
			t.Fatal(err)
		}
		hdr := map[string][]string{}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		hdr["X-Amz-Date"] = []string{at.Format(timeFormat)}
		canon, signed := CanonicalRequest("PUT", "svc.example:8080", c.path, c.query, hdr, c.length, emptySHA256, !c.s3)
		sum := sha256.Sum256([]byte(canon))
		sts := "AWS4-HMAC-SHA256\n" + at.Format(timeFormat) + "\n20261202/eu-west-1/svc/aws4_request\n" + hex.EncodeToString(sum[:])
		k := hmacSHA256([]byte("AWS4secret"), "20261202")
		for _, part := range []string{"eu-west-1", "svc", "aws4_request"} {
			k = hmacSHA256(k, part)
		}
		got := "SignedHeaders=" + signed + ", Signature=" + hex.EncodeToString(hmacSHA256(k, sts))
		if !strings.HasSuffix(req.Header.Get("Authorization"), got) {
			t.Errorf("case %d: SDK %q, ours ends %q\ncanonical:\n%s", i, req.Header.Get("Authorization"), got, canon)
		}
	}
}

// A wrong secret, a changed string to sign or a malformed signature does
// not verify.
func TestVerifyRefuses(t *testing.T) {
	out, err := Sign(Request{Method: "GET", Host: "h", Path: "/x"}, Params{AccessKeyID: "AKID", SecretAccessKey: "s", Service: "svc", RegionSet: []string{"*"}, PayloadHash: emptySHA256, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	_, sig, _ := strings.Cut(out["Authorization"], "Signature=")
	at, _ := time.Parse(timeFormat, out["X-Amz-Date"])
	canon, _ := CanonicalRequest("GET", "h", "/x", "", map[string][]string{"X-Amz-Date": {out["X-Amz-Date"]}, RegionSetHeader: {"*"}}, 0, emptySHA256, false)
	sts := StringToSign(at, Scope(at, "svc"), canon)
	if err := Verify("AKID", "s", sts, sig); err != nil {
		t.Fatalf("own signature: %v", err)
	}
	for name, f := range map[string]func() error{
		"wrong secret":    func() error { return Verify("AKID", "t", sts, sig) },
		"wrong key id":    func() error { return Verify("AKIE", "s", sts, sig) },
		"changed request": func() error { return Verify("AKID", "s", sts+"x", sig) },
		"not hex":         func() error { return Verify("AKID", "s", sts, "zz"+sig) },
		"truncated":       func() error { return Verify("AKID", "s", sts, sig[:len(sig)-2]) },
	} {
		if f() == nil {
			t.Errorf("%s verified", name)
		}
	}
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}
