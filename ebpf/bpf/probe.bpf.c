// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
//
// flexgw kernel latency probe.
//
// Three programs, aggregating into log2 histograms in kernel maps so user
// space does no per-event work (it reads the maps periodically):
//
//  - cgroup sockops on the gateway's cgroup. The kernel runs it only for
//    sockets created in that cgroup (or below it), so it needs no filter of
//    its own, at points of a connection's life it reaches anyway, with the
//    addresses at hand. It records each gateway connection in the conns map
//    when it starts (connect(2) sends its SYN, or an accepted handshake
//    completes), and measures connect latency (SYN sent -> ESTABLISHED) per
//    destination and accept handshake latency (SYN arrival -> ESTABLISHED)
//    per listener port.
//  - the BTF tracepoint sock:inet_sock_set_state, for the end of a
//    connection: failed connects (SYN_SENT -> CLOSE) per destination,
//    connection lifetime (ESTABLISHED -> CLOSE) per direction, and the
//    connection's final smoothed RTT. It is host-wide, so for everybody
//    else's sockets it costs a compare (only transitions to CLOSE matter) and
//    a socket cookie test.
//  - a TCP socket iterator user space runs every few seconds: the smoothed
//    RTT of established gateway connections, per remote endpoint (outbound)
//    and per listener port (inbound), with no per-packet work.
//
// Why this shape: the first version did everything in a raw tracepoint that
// tested each socket's cgroup ancestry on every state change of every TCP
// socket on the host, and sampled RTT from the per-ACK RTT callback: 17
// program runs and ~5 us per proxied connection. Socket-local storage for
// the per-connection record cost ~1 us more than a hash map.
//
// Build: see gen.go (bpf2go); vmlinux.h comes from `make generate`.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2

// TCP states (include/net/tcp_states.h).
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7
#define TCP_NEW_SYN_RECV 12

#define DIR_OUTBOUND 0
#define DIR_INBOUND 1

// NUM_SLOTS log2 buckets: slot i counts values v (microseconds) with
// 2^(i-1) < v <= 2^i, slot 0 counts v <= 1. The last slot also takes
// everything larger. Keep in sync with NumBuckets in histogram.go.
#define NUM_SLOTS 40

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

// A connection by its addresses, IPv4 as IPv4-mapped IPv6, ports in host
// order: what sockops sees of a request socket (before the accepted socket
// exists) and what the tracepoint and the iterator read from a socket.
struct conn_key {
	__u8 raddr[16];
	__u8 laddr[16];
	__u16 rport;
	__u16 lport;
};

// What the probe keeps per gateway connection, from the sockops callback
// that starts it to the tracepoint's CLOSE.
struct conn {
	// Before ESTABLISHED: when connect(2) sent the SYN (outbound), or when
	// the SYN arrived (inbound). After: when the connection was established.
	__u64 start_ns;
	// The connection's RTT histogram; key.ep is also the destination of an
	// outbound connection for the connect histogram and failure counter.
	struct rtt_key key;
	__u32 established;
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

// Gateway connections, from the SYN to CLOSE, in place: one insert and one
// delete per connection, the rest are (inlined) lookups. Keyed by addresses
// rather than by socket because an inbound connection starts as a request
// socket, which has neither socket storage nor a lasting cookie. Measured
// per connection (loopback connections, per-callback timing): socket
// storage cost about a microsecond more to create and free, an LRU map
// about 20 % more than this non-preallocated hash. Handshakes that never
// complete (a client that went away, a SYN flood) are deleted by user space
// (Probe.expirePending).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn);
} conns SEC(".maps");

// Force the types user space reads into BTF for bpf2go.
const struct hist *unused_hist __attribute__((unused));
const struct rtt_key *unused_rtt_key __attribute__((unused));
const struct conn_key *unused_conn_key __attribute__((unused));
const struct conn *unused_conn __attribute__((unused));

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

static __always_inline void hist_observe(struct hist *h, __u64 ns)
{
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
	hist_observe(h, ns);
}

static __always_inline void map_v4(__u8 *dst, __u32 addr_be)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr_be, 4);
}

static __always_inline void rtt_sample(const struct rtt_key *key, __u32 srtt8)
{
	__u32 srtt_us = srtt8 >> 3; // the kernel keeps srtt << 3
	if (srtt_us)
		hist_add(&rtt_hist, key, (__u64)srtt_us * 1000);
}

static __always_inline void skops_key(struct bpf_sock_ops *skops, struct conn_key *k)
{
	if (skops->family == AF_INET) {
		map_v4(k->raddr, skops->remote_ip4);
		map_v4(k->laddr, skops->local_ip4);
	} else {
		__u32 a[4];
		a[0] = skops->remote_ip6[0];
		a[1] = skops->remote_ip6[1];
		a[2] = skops->remote_ip6[2];
		a[3] = skops->remote_ip6[3];
		__builtin_memcpy(k->raddr, a, 16);
		a[0] = skops->local_ip6[0];
		a[1] = skops->local_ip6[1];
		a[2] = skops->local_ip6[2];
		a[3] = skops->local_ip6[3];
		__builtin_memcpy(k->laddr, a, 16);
	}
	k->rport = (__u16)bpf_ntohl(skops->remote_port);
	k->lport = (__u16)skops->local_port;
}

// sk_key reads a TCP socket's key. The local port comes from inet_sport:
// by the time the state changes to CLOSE the kernel has already released
// the port binding and zeroed skc_num.
static __always_inline void sk_key(struct tcp_sock *tp, struct conn_key *k)
{
	struct inet_sock *inet = &tp->inet_conn.icsk_inet;
	struct sock_common *skc = &inet->sk.__sk_common;
	if (skc->skc_family == AF_INET) {
		map_v4(k->raddr, skc->skc_daddr);
		map_v4(k->laddr, skc->skc_rcv_saddr);
	} else {
		__builtin_memcpy(k->raddr, skc->skc_v6_daddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(k->laddr, skc->skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
	}
	k->rport = bpf_ntohs(skc->skc_dport);
	k->lport = bpf_ntohs(inet->inet_sport);
}

static __always_inline void start_conn(struct conn_key *k,
				       __u32 direction, __u64 now, __u32 established)
{
	struct conn c = { .start_ns = now, .established = established };
	c.key.direction = direction;
	if (direction == DIR_OUTBOUND) {
		__builtin_memcpy(c.key.ep.addr, k->raddr, 16);
		c.key.ep.port = k->rport;
	} else {
		c.key.ep.port = k->lport;
	}
	bpf_map_update_elem(&conns, k, &c, BPF_ANY);
}

// mark gives the socket a cookie: at CLOSE the tracepoint looks up only
// sockets that have one, which most of the host's never get.
static __always_inline void mark(struct bpf_sock_ops *skops)
{
	bpf_get_socket_cookie(skops);
}

SEC("sockops")
int flexgw_sockops(struct bpf_sock_ops *skops)
{
	struct conn_key k = {};
	struct conn *c;
	__u64 now;

	switch (skops->op) {
	case BPF_SOCK_OPS_TIMEOUT_INIT:
		// Called for the request socket when a SYN arrives on one of the
		// gateway's listeners (and for outgoing connects, handled at
		// TCP_CONNECT_CB).
		if (skops->state != TCP_NEW_SYN_RECV)
			break;
		skops_key(skops, &k);
		start_conn(&k, DIR_INBOUND, bpf_ktime_get_ns(), 0);
		break;
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		// connect(2), just before the SYN goes out.
		skops_key(skops, &k);
		start_conn(&k, DIR_OUTBOUND, bpf_ktime_get_ns(), 0);
		mark(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		now = bpf_ktime_get_ns();
		skops_key(skops, &k);
		c = bpf_map_lookup_elem(&conns, &k);
		if (!c || c->established) {
			// The SYN was before the probe was attached, its entry was
			// expired (Probe.expirePending) or the map was full: count
			// the rest of the connection's life.
			start_conn(&k, skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB ? DIR_OUTBOUND : DIR_INBOUND, now, 1);
			mark(skops);
			break;
		}
		if (c->key.direction == DIR_OUTBOUND) {
			hist_add(&connect_hist, &c->key.ep, now - c->start_ns);
		} else {
			__u16 port = k.lport;
			hist_add(&handshake_hist, &port, now - c->start_ns);
			mark(skops);
		}
		c->start_ns = now;
		c->established = 1;
		break;
	}
	return 1;
}

// cookie_of is the socket's cookie, 0 when nobody ever asked for one (no
// gateway connection has cookie 0: sockops asked).
static __always_inline __u64 cookie_of(struct sock_common *skc)
{
	return skc->skc_cookie.counter;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(flexgw_set_state, struct sock *sk, int oldstate, int newstate)
{
	if (newstate != TCP_CLOSE || !cookie_of(&sk->__sk_common))
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	struct conn_key k = {};
	sk_key(tp, &k);
	struct conn *c = bpf_map_lookup_elem(&conns, &k);
	if (!c)
		return 0;
	if (c->established) {
		__u32 dir = c->key.direction;
		struct hist *h = bpf_map_lookup_elem(&lifetime_hist, &dir);
		if (h)
			hist_observe(h, bpf_ktime_get_ns() - c->start_ns);
		// The connection's last smoothed RTT: its best estimate.
		rtt_sample(&c->key, tp->srtt_us);
	} else if (oldstate == TCP_SYN_SENT) {
		__u64 one = 1;
		__u64 *n = bpf_map_lookup_elem(&connect_failures, &c->key.ep);
		if (n)
			__sync_fetch_and_add(n, 1);
		else if (bpf_map_update_elem(&connect_failures, &c->key.ep, &one, BPF_NOEXIST))
			if ((n = bpf_map_lookup_elem(&connect_failures, &c->key.ep)))
				__sync_fetch_and_add(n, 1);
	}
	bpf_map_delete_elem(&conns, &k);
	return 0;
}

// flexgw_rtt_sweep samples the smoothed RTT of every established gateway
// connection. User space runs it every few seconds (Options.RTTInterval), so
// a long-lived connection (an upstream pool, a keep-alive client) is
// sampled while it lives without any per-packet work; short ones get their
// sample at CLOSE.
SEC("iter/tcp")
int flexgw_rtt_sweep(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc || skc->skc_state != TCP_ESTABLISHED)
		return 0;
	if (!cookie_of(skc))
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	struct conn_key k = {};
	sk_key(tp, &k);
	struct conn *c = bpf_map_lookup_elem(&conns, &k);
	if (c && c->established)
		rtt_sample(&c->key, tp->srtt_us);
	return 0;
}
