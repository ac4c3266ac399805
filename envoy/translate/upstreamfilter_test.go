package translate

import (
	"testing"

	awssigningv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/aws_request_signing/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
)

// TestAWSSignatureIsAnUpstreamFilter: native-aws-signature-flex bound to
// a Service signs on the service's cluster, after the route's prefix
// rewrite (Envoy runs upstream filters on the request the router built),
// which is where the built-in data plane signs (at dispatch). The packed
// messages Envoy will read validate; the listener chain has no signer.
func TestAWSSignatureIsAnUpstreamFilter(t *testing.T) {
	res, err := Translate(loadDir(t, "testdata/in/aws-signature-upstream"), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res)
	var po *upstreamhttpv3.HttpProtocolOptions
	for _, c := range res.Envoy.Clusters {
		if c.GetName() != "default/orders-aws" {
			continue
		}
		po = &upstreamhttpv3.HttpProtocolOptions{}
		if err := c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey].UnmarshalTo(po); err != nil {
			t.Fatal(err)
		}
	}
	if po == nil {
		t.Fatal("no protocol options on the service's cluster")
	}
	if err := po.ValidateAll(); err != nil {
		t.Fatalf("protocol options: %v", err)
	}
	fs := po.GetHttpFilters()
	if len(fs) != 2 || fs[0].GetName() != "flexgw.native-aws-signature-flex.default/orders-signing" || fs[1].GetName() != upstreamCodec {
		t.Fatalf("upstream filters %v, want the signer then the codec", fs)
	}
	for i, m := range []proto.Message{&awssigningv3.AwsRequestSigning{}, &upstreamcodecv3.UpstreamCodec{}} {
		if err := fs[i].GetTypedConfig().UnmarshalTo(m); err != nil {
			t.Fatal(err)
		}
		if err := m.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
			t.Errorf("%s: %v", fs[i].GetName(), err)
		}
	}
	for _, l := range res.Envoy.Listeners {
		for _, fc := range l.GetFilterChains() {
			for _, nf := range fc.GetFilters() {
				mgr := &hcmv3.HttpConnectionManager{}
				if nf.GetTypedConfig().UnmarshalTo(mgr) != nil {
					continue
				}
				for _, hf := range mgr.GetHttpFilters() {
					if hf.GetName() == fs[0].GetName() {
						t.Errorf("listener %s still runs the signer before the rewrite", l.GetName())
					}
				}
			}
		}
	}
}
