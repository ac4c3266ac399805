// Package jose verifies compact JWS tokens (RFC 7515, algorithms of RFC
// 7518) and reads JSON Web Key sets (RFC 7517), fetched and cached from
// JWKS endpoints or given as a PEM or secret, with only the standard
// library. It knows nothing of policies: jwt-validation-flex pins the
// algorithm and key source and decides what a failure means.
package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strings"
)

// The caller pins one algorithm; the
// token's own "alg" must equal it, and the key's Go type must fit it, so
// neither "alg":"none" nor RS256→HS256 key confusion (an RSA public key
// used as an HMAC secret) can verify.

var (
	errMalformed = errors.New("malformed token")
	errAlg       = errors.New("algorithm not allowed")
	errSignature = errors.New("invalid signature")
	errKeyType   = errors.New("key does not fit the algorithm")
)

// Token is a parsed, not yet verified, compact JWS.
type Token struct {
	Header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}
	signingInput string
	// Payload is the decoded payload (the claims of a JWT).
	Payload []byte
	sig     []byte
}

var b64 = base64.RawURLEncoding

// ParseJWS splits and decodes a compact JWS without verifying it.
func ParseJWS(tok string) (*Token, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: want 3 dot-separated parts, got %d", errMalformed, len(parts))
	}
	t := &Token{signingInput: parts[0] + "." + parts[1]}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", errMalformed, err)
	}
	if err := json.Unmarshal(hb, &t.Header); err != nil {
		return nil, fmt.Errorf("%w: header: %v", errMalformed, err)
	}
	if t.Payload, err = b64.DecodeString(parts[1]); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", errMalformed, err)
	}
	if t.sig, err = b64.DecodeString(parts[2]); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", errMalformed, err)
	}
	return t, nil
}

// jwsAlgs are the algorithms flexgw verifies.
var jwsAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"HS256": true, "HS384": true, "HS512": true,
}

func algHash(alg string) (crypto.Hash, func() hash.Hash) {
	switch alg[2:] {
	case "384":
		return crypto.SHA384, sha512.New384
	case "512":
		return crypto.SHA512, sha512.New
	}
	return crypto.SHA256, sha256.New
}

// Verify checks t's signature with key under the pinned algorithm.
func Verify(t *Token, alg string, key any) error {
	if t.Header.Alg != alg || !jwsAlgs[alg] {
		return fmt.Errorf("%w: token alg %q, policy allows %q", errAlg, t.Header.Alg, alg)
	}
	h, newHash := algHash(alg)
	input := []byte(t.signingInput)
	switch alg[:2] {
	case "HS":
		secret, ok := key.([]byte)
		if !ok {
			return errKeyType
		}
		m := hmac.New(newHash, secret)
		m.Write(input)
		if !hmac.Equal(m.Sum(nil), t.sig) {
			return errSignature
		}
		return nil
	case "RS", "PS":
		pub, ok := key.(*rsa.PublicKey)
		if !ok {
			return errKeyType
		}
		d := newHash()
		d.Write(input)
		var err error
		if alg[0] == 'R' {
			err = rsa.VerifyPKCS1v15(pub, h, d.Sum(nil), t.sig)
		} else {
			// RFC 7518 3.5: the salt is as long as the hash.
			err = rsa.VerifyPSS(pub, h, d.Sum(nil), t.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h})
		}
		if err != nil {
			return errSignature
		}
		return nil
	case "ES":
		pub, ok := key.(*ecdsa.PublicKey)
		if !ok {
			return errKeyType
		}
		curve, size := esCurve(alg)
		if pub.Curve != curve {
			return errKeyType
		}
		// RFC 7518 3.4: R || S, each exactly the curve's byte size.
		if len(t.sig) != 2*size {
			return errSignature
		}
		d := newHash()
		d.Write(input)
		r := new(big.Int).SetBytes(t.sig[:size])
		s := new(big.Int).SetBytes(t.sig[size:])
		if !ecdsa.Verify(pub, d.Sum(nil), r, s) {
			return errSignature
		}
		return nil
	}
	return errAlg
}

func esCurve(alg string) (elliptic.Curve, int) {
	switch alg {
	case "ES384":
		return elliptic.P384(), 48
	case "ES512":
		return elliptic.P521(), 66
	}
	return elliptic.P256(), 32
}
