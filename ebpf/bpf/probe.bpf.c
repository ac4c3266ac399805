// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
//
// flexgw kernel latency probe.
//
// Two programs, both aggregating into log2 histograms in kernel maps so user
// space does no per-event work (it reads the maps periodically):
//
//  - raw tracepoint sock:inet_sock_set_state: connect latency
//    (SYN_SENT -> ESTABLISHED) per destination, failed connects
//    (SYN_SENT -> CLOSE) per destination, connection lifetime
//    (ESTABLISHED -> CLOSE) per direction. The raw form of the tracepoint is
//    used because it needs no tracefs and no access to it (CAP_BPF and
//    CAP_PERFMON are enough).
//  - cgroup sockops on the gateway's cgroup: accept handshake latency (SYN
//    arrival -> ESTABLISHED) per listener port, and the smoothed RTT of
//    established connections per remote endpoint (outbound) and per local
//    listener port (inbound).
//
// Attribution: the tracepoint fires in softirq context for most transitions,
// so "current" says nothing about who owns the socket. Instead the program
// reads the cgroup the socket was created in (sk->sk_cgrp_data, inherited by
// accepted sockets from their listener) and keeps only sockets at or below
// the gateway's cgroup. Sockops programs are only run for sockets of the
// cgroup they are attached to, so they need no filter.
//
// Build: see gen.go (bpf2go); vmlinux.h comes from `make generate`.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

// TCP states (include/net/tcp_states.h).
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_NEW_SYN_RECV 12

#define DIR_OUTBOUND 0
#define DIR_INBOUND 1

// NUM_SLOTS log2 buckets: slot i counts values v (microseconds) with
// 2^(i-1) < v <= 2^i, slot 0 counts v <= 1. The last slot also takes
// everything larger. Keep in sync with NumBuckets in histogram.go.
#define NUM_SLOTS 40

// RTT samples per connection are rate limited to one per this interval: the
// RTT callback runs on every ACK, a histogram update on each would cost more
// than the information is worth.
#define RTT_SAMPLE_NS 1000000000ULL

// Set by the loader before load (bpf2go rewrites these constants).
const volatile __u64 target_cgroup_id = 0;
const volatile __u32 target_cgroup_level = 0;

struct hist {
	__u64 slots[NUM_SLOTS];
	__u64 sum_us;
};

// An IPv6 (or IPv4-mapped IPv6) address and port, port in host order.
struct endpoint {
	__u8 addr[16];
	__u16 port;
	__u16 pad;
};

struct rtt_key {
	// DIR_OUTBOUND: ep is the remote endpoint. DIR_INBOUND: ep.port is the
	// local (listener) port and ep.addr is zero.
	struct endpoint ep;
	__u32 direction;
};

struct conn_state {
	__u64 start_ns;
	__u32 direction;
	__u32 established;
};

struct syn_key {
	__u8 raddr[16];
	__u16 rport;
	__u16 lport;
};

struct rtt_storage {
	__u64 last_sample_ns;
	__u32 direction;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct endpoint);
	__type(value, struct hist);
} connect_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct endpoint);
	__type(value, __u64);
} connect_failures SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, struct hist);
} handshake_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rtt_key);
	__type(value, struct hist);
} rtt_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct hist);
} lifetime_hist SEC(".maps");

// Sockets of the gateway between SYN_SENT/SYN_RECV and CLOSE, by address.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_state);
} conns SEC(".maps");

// SYN arrival time of pending inbound handshakes.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syn_key);
	__type(value, __u64);
} syn_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct rtt_storage);
} rtt_store SEC(".maps");

// Force the histogram types into BTF for bpf2go.
const struct hist *unused_hist __attribute__((unused));
const struct rtt_key *unused_rtt_key __attribute__((unused));

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;
	shift = (v > 0xFFFFFFFFULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 slot_of(__u64 us)
{
	if (us <= 1)
		return 0;
	__u32 s = log2_u64(us - 1) + 1;
	return s >= NUM_SLOTS ? NUM_SLOTS - 1 : s;
}

static __always_inline void hist_add(void *map, const void *key, __u64 ns)
{
	static const struct hist zero;
	struct hist *h = bpf_map_lookup_elem(map, key);
	if (!h) {
		bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(map, key);
		if (!h)
			return;
	}
	__u64 us = (ns + 999) / 1000;
	__u32 s = slot_of(us);
	// Re-check on the register actually used for the index: clang may
	// otherwise clamp a copy and leave the verifier with an unbounded one.
	barrier_var(s);
	if (s >= NUM_SLOTS)
		return;
	__sync_fetch_and_add(&h->slots[s], 1);
	__sync_fetch_and_add(&h->sum_us, us);
}

static __always_inline void lifetime_add(__u32 direction, __u64 ns)
{
	struct hist *h = bpf_map_lookup_elem(&lifetime_hist, &direction);
	if (!h)
		return;
	__u64 us = (ns + 999) / 1000;
	__u32 s = slot_of(us);
	// Re-check on the register actually used for the index: clang may
	// otherwise clamp a copy and leave the verifier with an unbounded one.
	barrier_var(s);
	if (s >= NUM_SLOTS)
		return;
	__sync_fetch_and_add(&h->slots[s], 1);
	__sync_fetch_and_add(&h->sum_us, us);
}

static __always_inline void map_v4(__u8 *dst, __u32 addr_be)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr_be, 4);
}

// Before Linux 6.0 struct cgroup kept its ancestors' ids, not pointers.
struct cgroup___old {
	int level;
	__u64 ancestor_ids[];
} __attribute__((preserve_access_index));

// owned reports whether the socket was created in the gateway's cgroup or
// one below it.
static __always_inline bool owned(struct sock *sk)
{
	struct cgroup *cg = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	if (!cg)
		return false;
	int level = BPF_CORE_READ(cg, level);
	if (level < (int)target_cgroup_level)
		return false;
	if (bpf_core_field_exists(struct cgroup___old, ancestor_ids)) {
		__u64 id = 0;
		__u64 off = bpf_core_field_offset(struct cgroup___old, ancestor_ids);
		if (bpf_probe_read_kernel(&id, sizeof(id),
					  (void *)cg + off + (__u64)target_cgroup_level * sizeof(id)))
			return false;
		return id == target_cgroup_id;
	}
	struct cgroup *anc = NULL;
	__u64 off = bpf_core_field_offset(struct cgroup, ancestors);
	if (bpf_probe_read_kernel(&anc, sizeof(anc),
				  (void *)cg + off + (__u64)target_cgroup_level * sizeof(anc)))
		return false;
	if (!anc)
		return false;
	return BPF_CORE_READ(anc, kn, id) == target_cgroup_id;
}

static __always_inline void remote_endpoint(struct sock *sk, struct endpoint *ep)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET) {
		map_v4(ep->addr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	} else {
		BPF_CORE_READ_INTO(&ep->addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	ep->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

SEC("raw_tracepoint/inet_sock_set_state")
int flexgw_set_state(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	int oldstate = (int)ctx->args[1];
	int newstate = (int)ctx->args[2];

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;

	__u64 key = (__u64)sk;
	__u64 now = bpf_ktime_get_ns();

	if (newstate == TCP_SYN_SENT) {
		// connect(2): process context, but the socket's cgroup is what
		// counts (the same test is used everywhere).
		if (!owned(sk))
			return 0;
		struct conn_state st = { .start_ns = now, .direction = DIR_OUTBOUND };
		bpf_map_update_elem(&conns, &key, &st, BPF_ANY);
		return 0;
	}

	if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		if (!owned(sk))
			return 0;
		struct conn_state st = { .start_ns = now, .direction = DIR_INBOUND, .established = 1 };
		bpf_map_update_elem(&conns, &key, &st, BPF_ANY);
		return 0;
	}

	struct conn_state *st = bpf_map_lookup_elem(&conns, &key);
	if (!st)
		return 0;

	if (oldstate == TCP_SYN_SENT && newstate == TCP_ESTABLISHED) {
		struct endpoint ep = {};
		remote_endpoint(sk, &ep);
		hist_add(&connect_hist, &ep, now - st->start_ns);
		st->start_ns = now;
		st->established = 1;
		return 0;
	}

	if (newstate != TCP_CLOSE)
		return 0;

	if (oldstate == TCP_SYN_SENT) {
		struct endpoint ep = {};
		remote_endpoint(sk, &ep);
		__u64 one = 1;
		__u64 *n = bpf_map_lookup_elem(&connect_failures, &ep);
		if (n)
			__sync_fetch_and_add(n, 1);
		else if (bpf_map_update_elem(&connect_failures, &ep, &one, BPF_NOEXIST))
			if ((n = bpf_map_lookup_elem(&connect_failures, &ep)))
				__sync_fetch_and_add(n, 1);
	} else if (st->established) {
		lifetime_add(st->direction, now - st->start_ns);
	}
	bpf_map_delete_elem(&conns, &key);
	return 0;
}

static __always_inline void skops_remote(struct bpf_sock_ops *skops, __u8 *addr)
{
	if (skops->family == AF_INET) {
		map_v4(addr, skops->remote_ip4);
	} else {
		__u32 a[4];
		a[0] = skops->remote_ip6[0];
		a[1] = skops->remote_ip6[1];
		a[2] = skops->remote_ip6[2];
		a[3] = skops->remote_ip6[3];
		__builtin_memcpy(addr, a, 16);
	}
}

static __always_inline void syn_key_of(struct bpf_sock_ops *skops, struct syn_key *k)
{
	skops_remote(skops, k->raddr);
	k->rport = (__u16)bpf_ntohl(skops->remote_port);
	k->lport = (__u16)skops->local_port;
}

static __always_inline void rtt_sample(struct bpf_sock_ops *skops, __u32 direction)
{
	__u32 srtt_us = skops->srtt_us >> 3; // srtt_us holds srtt << 3
	if (!srtt_us)
		return;
	struct rtt_key k = {};
	k.direction = direction;
	if (direction == DIR_OUTBOUND) {
		skops_remote(skops, k.ep.addr);
		k.ep.port = (__u16)bpf_ntohl(skops->remote_port);
	} else {
		k.ep.port = (__u16)skops->local_port;
	}
	hist_add(&rtt_hist, &k, (__u64)srtt_us * 1000);
}

static __always_inline void established(struct bpf_sock_ops *skops, __u32 direction)
{
	struct bpf_sock *sk = skops->sk;
	if (sk) {
		struct rtt_storage *rs = bpf_sk_storage_get(&rtt_store, sk, 0,
							    BPF_SK_STORAGE_GET_F_CREATE);
		if (rs) {
			rs->direction = direction;
			rs->last_sample_ns = bpf_ktime_get_ns();
		}
	}
	rtt_sample(skops, direction);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG);
}

SEC("sockops")
int flexgw_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TIMEOUT_INIT:
		// Called for the request socket when a SYN arrives on one of the
		// gateway's listeners (and for outgoing connects, ignored here).
		if (skops->state == TCP_NEW_SYN_RECV) {
			struct syn_key k = {};
			syn_key_of(skops, &k);
			__u64 now = bpf_ktime_get_ns();
			bpf_map_update_elem(&syn_start, &k, &now, BPF_NOEXIST);
		}
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: {
		struct syn_key k = {};
		syn_key_of(skops, &k);
		__u64 *start = bpf_map_lookup_elem(&syn_start, &k);
		if (start) {
			__u16 port = k.lport;
			hist_add(&handshake_hist, &port, bpf_ktime_get_ns() - *start);
			bpf_map_delete_elem(&syn_start, &k);
		}
		established(skops, DIR_INBOUND);
		break;
	}
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		established(skops, DIR_OUTBOUND);
		break;
	case BPF_SOCK_OPS_RTT_CB: {
		struct bpf_sock *sk = skops->sk;
		if (!sk)
			break;
		struct rtt_storage *rs = bpf_sk_storage_get(&rtt_store, sk, 0, 0);
		if (!rs)
			break;
		__u64 now = bpf_ktime_get_ns();
		if (now - rs->last_sample_ns < RTT_SAMPLE_NS)
			break;
		rs->last_sample_ns = now;
		rtt_sample(skops, rs->direction);
		break;
	}
	}
	return 1;
}
