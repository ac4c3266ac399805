// Package rls is the agent's Envoy RateLimitService (envoy.service.
// ratelimit.v3): Envoy's ratelimit filter, rendered by rate-limiting-flex,
// asks it about every request, and it counts in the same shared store
// (Redis) and the same keys as the built-in data plane, so Envoy replicas
// and built-in replicas enforce one quota.
//
// The descriptors carry everything needed (policy.DescriptorBucket: the key
// prefix, policy.DescriptorLimit: "max/periodMs", policy.DescriptorKey: the
// keySelector value), so the service keeps no configuration of its own.
package rls

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flexgw/flexgw/policy"
)

// Server implements rlsv3.RateLimitServiceServer over a policy.SharedStore.
type Server struct {
	rlsv3.UnimplementedRateLimitServiceServer
	store policy.SharedStore
	log   *slog.Logger
}

var _ rlsv3.RateLimitServiceServer = (*Server)(nil)

// New returns a server counting in store (the Redis store, or
// sharedstore.NewMemory() when no shared storage is configured).
func New(store policy.SharedStore, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{store: store, log: log.With("component", "rls")}
}

// Register adds the service to a gRPC server (the agent's xDS server).
func (s *Server) Register(g *grpc.Server) { rlsv3.RegisterRateLimitServiceServer(g, s) }

// ShouldRateLimit implements the RateLimitService. A descriptor without
// flexgw's bucket and limit entries is not ours and is answered OK. When
// the store fails the call fails (UNAVAILABLE): Envoy then applies the
// binding's failOpen (failure_mode_deny).
func (s *Server) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	resp := &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}
	for i, d := range req.GetDescriptors() {
		var bucket, limit string
		var key []string
		for _, e := range d.GetEntries() {
			switch e.GetKey() {
			case policy.DescriptorBucket:
				bucket = e.GetValue()
			case policy.DescriptorLimit:
				limit = e.GetValue()
			default:
				key = append(key, e.GetValue())
			}
		}
		st := &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
		resp.Statuses = append(resp.Statuses, st)
		if bucket == "" || limit == "" {
			continue
		}
		max, period, err := parseLimit(limit)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "descriptor %d: %v", i, err)
		}
		counter := bucket + policy.RateLimitGroup(strings.Join(key, "|"))
		var n, leftMs int64
		if q, ok := s.store.(policy.QuotaStore); ok {
			n, leftMs, err = q.Acquire(ctx, counter, max, period)
		} else {
			n, leftMs, err = s.store.Incr(ctx, counter, period)
		}
		if err != nil {
			s.log.Warn("rate limit: shared storage failed", "bucket", bucket, "err", err)
			return nil, status.Errorf(codes.Unavailable, "shared storage: %v", err)
		}
		remaining := max - n
		if remaining < 0 {
			remaining = 0
		}
		st.CurrentLimit = &rlsv3.RateLimitResponse_RateLimit{RequestsPerUnit: uint32(max), Unit: unitOf(period)}
		st.LimitRemaining = uint32(remaining)
		st.DurationUntilReset = durationpb.New(time.Duration(leftMs) * time.Millisecond)
		if n > max {
			st.Code = rlsv3.RateLimitResponse_OVER_LIMIT
			resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
		}
	}
	return resp, nil
}

func parseLimit(s string) (max, periodMs int64, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		max, err = strconv.ParseInt(a, 10, 64)
		if err == nil {
			periodMs, err = strconv.ParseInt(b, 10, 64)
		}
	}
	if !ok || err != nil || max <= 0 || periodMs <= 0 {
		return 0, 0, fmt.Errorf("bad %s %q: want max/periodMs", policy.DescriptorLimit, s)
	}
	return max, periodMs, nil
}

// unitOf names the period for Envoy's x-ratelimit-limit header when it is
// one of the protocol's units; other periods report UNKNOWN.
func unitOf(periodMs int64) rlsv3.RateLimitResponse_RateLimit_Unit {
	switch periodMs {
	case 1000:
		return rlsv3.RateLimitResponse_RateLimit_SECOND
	case 60000:
		return rlsv3.RateLimitResponse_RateLimit_MINUTE
	case 3600000:
		return rlsv3.RateLimitResponse_RateLimit_HOUR
	case 86400000:
		return rlsv3.RateLimitResponse_RateLimit_DAY
	}
	return rlsv3.RateLimitResponse_RateLimit_UNKNOWN
}
