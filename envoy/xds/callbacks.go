package xds

import (
	"context"
	"sort"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/flexgw/flexgw/ir"
)

func snapVersion(s *ir.Snapshot) uint64 {
	if s == nil {
		return 0
	}
	return s.Version
}

// sent remembers the last response per stream and type, so a NACK can name
// the resources it rejected.
type sentKey struct {
	stream  int64
	typeURL string
}

type sentResponse struct {
	version   string
	nonce     string
	resources []*anypb.Any
}

func (s *Server) callbacks() serverv3.Callbacks {
	sent := map[sentKey]sentResponse{}
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, typeURL string) error {
			return nil
		},
		StreamClosedFunc: func(id int64, node *corev3.Node) {
			s.streamClosed(id, sent)
		},
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, typeURL string) error {
			return nil
		},
		DeltaStreamClosedFunc: func(id int64, node *corev3.Node) {
			s.streamClosed(id, sent)
		},
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			s.request(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil, sent)
			if req.GetErrorDetail() != nil {
				// A NACK carries the last version the client accepted, which
				// differs from the snapshot's, so the cache would resend the
				// rejected version at once and the client reject it again,
				// forever. Mark the rejected version as seen: the client gets
				// the next version, which is what fixes the rejection.
				s.mu.Lock()
				if r, ok := sent[sentKey{id, req.GetTypeUrl()}]; ok && r.nonce == req.GetResponseNonce() {
					req.VersionInfo = r.version
				}
				s.mu.Unlock()
			}
			return nil
		},
		StreamResponseFunc: func(ctx context.Context, id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.mu.Lock()
			sent[sentKey{id, resp.GetTypeUrl()}] = sentResponse{version: resp.GetVersionInfo(), nonce: resp.GetNonce(), resources: resp.GetResources()}
			s.mu.Unlock()
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			// Delta requests carry no version: the ACKed version is the one
			// of the response the nonce names.
			s.mu.Lock()
			version := ""
			if r, ok := sent[sentKey{id, req.GetTypeUrl()}]; ok && r.nonce == req.GetResponseNonce() {
				version = r.version
			}
			s.mu.Unlock()
			s.request(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), version, req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil, sent)
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			var res []*anypb.Any
			for _, r := range resp.GetResources() {
				res = append(res, r.GetResource())
			}
			s.mu.Lock()
			sent[sentKey{id, resp.GetTypeUrl()}] = sentResponse{version: resp.GetSystemVersionInfo(), nonce: resp.GetNonce(), resources: res}
			s.mu.Unlock()
		},
	}
}

// request records an ACK or a NACK. A request with no nonce is a
// subscription, not an answer.
func (s *Server) request(stream int64, node *corev3.Node, typeURL, nonce, version, errMsg string, nack bool, sent map[sentKey]sentResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.nodeLocked(stream, node)
	if ns == nil {
		return
	}
	if ns.Group == GroupGRPC && !s.grpcActive {
		// Translating takes pushMu, which Push holds while it takes mu.
		s.grpcActive = true
		go s.activateGRPC()
	}
	ns.LastSeen = time.Now()
	if nonce == "" {
		return
	}
	if !nack {
		if version != "" {
			ns.Acked[typeURL] = version
		}
		return
	}
	rejected := sent[sentKey{stream, typeURL}]
	if rejected.nonce == nonce {
		// The version Envoy reports in a NACK is the last one it accepted;
		// the rejected one is the version of the response it answers.
		version = rejected.version
	}
	n := &NACK{
		Node: ns.ID, TypeURL: typeURL, Version: version, Error: errMsg, At: time.Now(),
		Resources: resourceNames(rejected.resources, 20),
	}
	ns.LastNACK = n
	s.status.LastNACK = n
	s.metrics.nacks.WithLabelValues(shortType(typeURL)).Inc()
	s.log.Warn("xDS update rejected (NACK)", "node", ns.ID, "type", shortType(typeURL), "version", version,
		"resources", n.Resources, "error_detail", errMsg)
}

func (s *Server) nodeLocked(stream int64, node *corev3.Node) *NodeStatus {
	id := s.streams[stream]
	if node != nil && node.GetId() != "" {
		id = node.GetId()
		s.streams[stream] = id
	}
	if id == "" {
		return nil
	}
	ns := s.nodes[id]
	if ns == nil {
		ns = &NodeStatus{ID: id, Acked: map[string]string{}}
		s.nodes[id] = ns
		s.log.Info("node connected", "node", id, "cluster", node.GetCluster(), "group", nodeGroup(node), "user_agent", node.GetUserAgentName())
	}
	if node != nil {
		ns.Cluster = node.GetCluster()
		ns.Group = nodeGroup(node)
		ns.UserAgent = node.GetUserAgentName()
	}
	ns.Connected = true
	return ns
}

func (s *Server) streamClosed(stream int64, sent map[sentKey]sentResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.streams[stream]
	delete(s.streams, stream)
	for k := range sent {
		if k.stream == stream {
			delete(sent, k)
		}
	}
	if id == "" {
		return
	}
	for _, other := range s.streams {
		if other == id {
			return // the node still has a stream
		}
	}
	if ns := s.nodes[id]; ns != nil {
		ns.Connected = false
	}
}

// resourceNames decodes up to max resource names of a response.
func resourceNames(rs []*anypb.Any, max int) []string {
	var out []string
	for _, a := range rs {
		if len(out) == max {
			out = append(out, "...")
			break
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			continue
		}
		out = append(out, cachev3.GetResourceName(m))
	}
	return out
}

func shortType(typeURL string) string {
	for i := len(typeURL) - 1; i >= 0; i-- {
		if typeURL[i] == '.' {
			return typeURL[i+1:]
		}
	}
	return typeURL
}

func sortedNodeIDs(m map[string]*NodeStatus) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
