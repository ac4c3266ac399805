package kube

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TLS from Kubernetes: Ingress spec.tls and Gateway HTTPS listeners name
// kubernetes.io/tls Secrets. Their certificates become the same `tls`
// policy a conf.d binds to an https ApiInstance (one certificate per
// listener, the others in its sniCertificates), so both data planes serve
// them as they serve a directory's. A Secret that is missing, of another
// kind, malformed, or in another namespace without a ReferenceGrant is left
// out and reported (listener ResolvedRefs=False, an Ingress's log line);
// the listener serves the certificates that are good, and the rest of the
// configuration is untouched.

var gvrReferenceGrant = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1beta1", Resource: "referencegrants"}

// tlsSecretType is the only Secret type certificates are read from: the
// source lists Secrets of this type only (a field selector), never the
// cluster's other Secrets.
const tlsSecretType = "kubernetes.io/tls"

// certKey is a certificate chain and key from a Secret, PEM.
type certKey struct {
	crt, key string
}

// certProblem says why a certificate reference was not used, in the
// Gateway API's words (reason) and the user's (msg).
type certProblem struct {
	reason string // InvalidCertificateRef or RefNotPermitted
	msg    string
}

// tlsSecret reads a kubernetes.io/tls Secret and checks its pair the way
// the tls policy will (crypto/tls), so a bad Secret is reported against
// its reference instead of failing the whole configuration.
func (s *Source) tlsSecret(ns, name string) (certKey, *certProblem) {
	id := fmt.Sprintf("Secret %s/%s", ns, name)
	st := s.stores["TLSSecret"]
	if st == nil {
		return certKey{}, &certProblem{"InvalidCertificateRef", id + " cannot be read"}
	}
	o, ok, _ := st.GetByKey(ns + "/" + name)
	if !ok {
		return certKey{}, &certProblem{"InvalidCertificateRef", id + " not found (or not of type " + tlsSecretType + ")"}
	}
	u := o.(*unstructured.Unstructured)
	data, _, _ := unstructured.NestedStringMap(u.Object, "data")
	dec := func(k string) string {
		b, err := base64.StdEncoding.DecodeString(data[k])
		if err != nil {
			return ""
		}
		return string(b)
	}
	// Only the PEM blocks go on: text around them (which PEM allows and
	// crypto/tls skips) could hold a "$NAME" the compile step would expand.
	ck := certKey{crt: pemBlocks(dec("tls.crt")), key: pemBlocks(dec("tls.key"))}
	if ck.crt == "" || ck.key == "" {
		return certKey{}, &certProblem{"InvalidCertificateRef", id + " has no PEM tls.crt or no PEM tls.key"}
	}
	if _, err := tls.X509KeyPair([]byte(ck.crt), []byte(ck.key)); err != nil {
		return certKey{}, &certProblem{"InvalidCertificateRef", fmt.Sprintf("%s: tls.crt and tls.key are not a certificate and its key: %v", id, err)}
	}
	return ck, nil
}

// pemBlocks re-encodes the PEM blocks of s (type and bytes, no headers)
// and drops everything else.
func pemBlocks(s string) string {
	var b strings.Builder
	rest := []byte(s)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return b.String()
		}
		_ = pem.Encode(&b, &pem.Block{Type: blk.Type, Bytes: blk.Bytes})
	}
}

// refGranted reports whether a ReferenceGrant in toNS lets objects of
// fromGroup/fromKind in fromNS refer to the toGroup/toKind object toName
// (toName "" asks for every object of that kind: only a grant naming none
// allows it). Only the Gateway API's rule is applied: the grant lives in
// the target's namespace, which its owner controls.
func (s *Source) refGranted(fromGroup, fromKind, fromNS, toGroup, toKind, toNS, toName string) bool {
	st := s.stores["ReferenceGrant"]
	if st == nil {
		return false
	}
	for _, o := range st.List() {
		g := o.(*unstructured.Unstructured)
		if g.GetNamespace() != toNS {
			continue
		}
		from, _, _ := unstructured.NestedSlice(g.Object, "spec", "from")
		to, _, _ := unstructured.NestedSlice(g.Object, "spec", "to")
		fromOK := false
		for _, f := range from {
			m, _ := f.(map[string]any)
			if str(m["group"]) == fromGroup && str(m["kind"]) == fromKind && str(m["namespace"]) == fromNS {
				fromOK = true
			}
		}
		if !fromOK {
			continue
		}
		for _, t := range to {
			m, _ := t.(map[string]any)
			if str(m["group"]) == toGroup && str(m["kind"]) == toKind && (str(m["name"]) == "" || str(m["name"]) == toName) {
				return true
			}
		}
	}
	return false
}

// tlsBinding is the tls policy of a generated https ApiInstance: the first
// certificate is the one served when no other covers the client's SNI.
func tlsBinding(api string, certs []certKey) genDoc {
	cfg := map[string]any{"certificate": map[string]any{"crt": certs[0].crt, "key": certs[0].key}}
	if len(certs) > 1 {
		more := make([]any, 0, len(certs)-1)
		for _, c := range certs[1:] {
			more = append(more, map[string]any{"crt": c.crt, "key": c.key})
		}
		cfg["sniCertificates"] = more
	}
	name := "tls-" + api
	return genDoc{name: genNamespace + "/PolicyBinding/" + name, doc: flexDoc("PolicyBinding", genNamespace, name, map[string]any{
		"targetRef": map[string]any{"kind": "ApiInstance", "name": api, "namespace": genNamespace},
		"policyRef": map[string]any{"name": "tls"},
		"config":    cfg,
	})}
}

// addCert appends c unless the same pair is there already (two listeners
// or Ingresses naming one Secret).
func addCert(certs []certKey, c certKey) []certKey {
	for _, x := range certs {
		if x == c {
			return certs
		}
	}
	return append(certs, c)
}
