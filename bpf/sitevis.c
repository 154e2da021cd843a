// sitevis: observe every packet at TC clsact ingress/egress (or XDP ingress) and
// aggregate it into flows, exact per-interface totals and sampled headers.
//
// Observe-only: every path returns TC_ACT_UNSPEC (XDP_PASS), so the packet goes on
// to the next filter exactly as if we were not there.
//
// Compile-time settings (passed by the loader as -D...):
//   FLOW_ENTRIES      flow table size (each of the two swapped tables)
//   OVERFLOW_ENTRIES  overflow bucket table size
//   TOTALS_ENTRIES    per-interface totals table size (interfaces without a slot)
//   SAMPLE_N          1-in-N packet sampling, 0 = off
//   SAMPLE_COST_NS    1e9 / per-CPU sample rate limit (token bucket refill)
//   SAMPLE_BURST      token bucket depth in samples
//   RINGBUF_PAGES     ring buffer size in pages (power of two)
//   PERCPU_FLOWS      1 = per-CPU flow table, 0 = shared table with atomic adds.
//                     Default 0: measured on 2 vCPUs (trafgen, 1000 flows, TC egress,
//                     bpf_stats) shared 289-315 ns/packet vs per-CPU 295-312, i.e. the
//                     same; shared needs 1/ncpus of the memory and of the drain copy.
//   SITEVIS_XDP       defined = build the XDP ingress entry point instead of TC
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/pkt_cls.h>

#ifndef FLOW_ENTRIES
#define FLOW_ENTRIES 65536
#endif
#ifndef OVERFLOW_ENTRIES
#define OVERFLOW_ENTRIES 4096
#endif
#ifndef TOTALS_ENTRIES
#define TOTALS_ENTRIES 4096
#endif
// Interfaces with ifindex < TOTALS_SLOTS / 2 count their totals in a per-CPU array
// slot (epoch * TOTALS_SLOTS + ifindex * 2 + dir), the others in the totals hash. Not
// a loader setting: the drain reads the array's size from the map.
#define TOTALS_SLOTS 1024
#ifndef SAMPLE_N
#define SAMPLE_N 0
#endif
#ifndef SAMPLE_COST_NS
#define SAMPLE_COST_NS 1000000ULL
#endif
#ifndef SAMPLE_BURST
#define SAMPLE_BURST 100ULL
#endif
#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 64
#endif
#ifndef PERCPU_FLOWS
#define PERCPU_FLOWS 0
#endif

#define DIR_INGRESS 0
#define DIR_EGRESS 1

// Bounds that keep the verifier happy and a crafted packet from looping us.
#define MAX_VLAN_TAGS 3
#define MAX_IPV6_EXT 8

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD

// Indices into the per-CPU counter array (mirrored in Python, kernel.py).
#define CNT_OVERFLOW 0       // packets that found the flow table full
#define CNT_RINGBUF_LOST 1   // samples dropped because the ring buffer was full
#define CNT_RATE_LIMITED 2   // samples dropped by the in-kernel rate limit
#define CNT_TRUNCATED 3      // frames whose headers end before the parser expected
#define CNT_SAMPLED 4        // samples written to the ring buffer
#define CNT_UNACCOUNTED 5    // totals/overflow tables full: should stay 0
#define CNT_MAX 6

// Flow key: 48 bytes without implicit padding, so hashing never sees garbage.
// Ports and ethertype are in host order; addresses are raw network bytes
// (IPv4 in the first 4 bytes).
struct flow_key {
    u32 ifindex;
    u8 dir;
    u8 l3;          // 0 = not IP (or IP header incomplete), 4, 6
    u8 ipproto;     // IP protocol of the L4 payload when l3 != 0
    u8 has_ports;   // 1 when sport/dport come from a real TCP/UDP header
    u16 ethertype;  // after all VLAN tags
    u16 vlan;       // outermost VLAN id, 0 when untagged
    u16 sport;
    u16 dport;
    u8 src[16];
    u8 dst[16];
};

struct flow_val {
    u64 packets;
    u64 bytes;
    // Stamped when the entry is made (the flow's first packet in this table, per CPU
    // in a per-CPU table), not on every packet: a clock read costs ~40 ns here, a
    // quarter of the program, and nothing downstream needs per-packet times. So
    // last_ns == first_ns; the drain time bounds the flow's last packet.
    u64 first_ns;
    u64 last_ns;
    u64 tcp_flags;  // u64 so the shared table can OR it with one atomic op
};

// Overflow bucket: (interface, direction, protocol, ethertype) of one epoch.
struct ovf_key {
    u32 ifindex;
    u8 dir;
    u8 l3;
    u8 ipproto;
    u8 epoch;
    u16 ethertype;
    u16 pad2;
};

struct total_key {
    u32 ifindex;
    u16 dir;
    u16 epoch;
};

struct counts {
    u64 packets;
    u64 bytes;
};

struct sample {
    struct flow_key key;
    u64 ts_ns;
    u32 length;
    u8 ttl;
    u8 tcp_flags;
    u16 pad;
};

struct bucket {
    u64 budget_ns;  // accumulated allowance; one sample costs SAMPLE_COST_NS
    u64 last_ns;
    u64 rng;        // xorshift64 state, 0 = not seeded yet
};

// Epochs: each packet reads the current epoch (0/1) once and counts into that epoch's
// flow table, totals and overflow buckets, so the three always describe the same
// packets. Userspace flips the epoch, then rewrites a slot of the map-in-map, which
// waits for every running program (synchronize_rcu): after that nobody writes the old
// epoch, and its flows, totals and buckets are read and emptied together, exactly,
// so flow rows add up to the interface totals of every interval.
#if PERCPU_FLOWS
BPF_TABLE("percpu_hash", struct flow_key, struct flow_val, flows_a, FLOW_ENTRIES);
BPF_TABLE("percpu_hash", struct flow_key, struct flow_val, flows_b, FLOW_ENTRIES);
#else
BPF_TABLE("hash", struct flow_key, struct flow_val, flows_a, FLOW_ENTRIES);
BPF_TABLE("hash", struct flow_key, struct flow_val, flows_b, FLOW_ENTRIES);
#endif
BPF_ARRAY_OF_MAPS(active_flows, "flows_a", 2);  // [epoch] -> flows_a / flows_b
BPF_ARRAY(current_epoch, u32, 1);

// Per epoch: emptied by userspace once the epoch is no longer current.
BPF_PERCPU_ARRAY(totals_slots, struct counts, 2 * TOTALS_SLOTS);
BPF_PERCPU_HASH(totals, struct total_key, struct counts, TOTALS_ENTRIES);
BPF_PERCPU_HASH(overflow, struct ovf_key, struct counts, OVERFLOW_ENTRIES);
// Cumulative: userspace reports the differences between readings.
BPF_PERCPU_ARRAY(counters, u64, CNT_MAX);
BPF_PERCPU_ARRAY(sample_bucket, struct bucket, 1);
BPF_RINGBUF_OUTPUT(samples, RINGBUF_PAGES);

struct meta {
    u32 length;      // frame bytes on the wire without FCS
    u32 segs;        // wire frames (GSO segments)
    u8 tcp_flags;
    u8 ttl;
    u8 truncated;
    u8 vlan_seen;    // outermost VLAN id already taken
    u32 caplen;      // bytes readable from offset 0 (skb->len, XDP buffer length)
};

#ifdef SITEVIS_XDP
#define CTX struct xdp_md
// bpf_xdp_load_bytes also reads multi-buffer fragments.
#define LOAD(ctx, off, to, len) bpf_xdp_load_bytes(ctx, off, to, len)
#else
#define CTX struct __sk_buff
// Not direct packet access: with AF_PACKET TX_RING senders only the Ethernet
// header is in the linear area, and reading data/data_end would misparse.
#define LOAD(ctx, off, to, len) bpf_skb_load_bytes(ctx, off, to, len)
#endif

static __always_inline void count_add(u32 idx, u64 n)
{
    u64 *c = counters.lookup(&idx);
    if (c)
        *c += n;  // per-CPU slot, programs do not nest on one CPU for one hook
}

static __always_inline void parse_l4(CTX *ctx, u32 off, struct flow_key *k, struct meta *m)
{
    if (k->ipproto == IPPROTO_TCP) {
        u8 tcp[14];  // ports, seq, ack, data offset, flags
        if (LOAD(ctx, off, tcp, sizeof(tcp)) < 0) {
            m->truncated = 1;
            return;
        }
        k->sport = ((u16)tcp[0] << 8) | tcp[1];
        k->dport = ((u16)tcp[2] << 8) | tcp[3];
        k->has_ports = 1;
        m->tcp_flags = tcp[13];
    } else if (k->ipproto == IPPROTO_UDP) {
        u8 udp[8];
        if (LOAD(ctx, off, udp, sizeof(udp)) < 0) {
            m->truncated = 1;
            return;
        }
        k->sport = ((u16)udp[0] << 8) | udp[1];
        k->dport = ((u16)udp[2] << 8) | udp[3];
        k->has_ports = 1;
    } else if (k->ipproto == IPPROTO_ICMP || k->ipproto == IPPROTO_ICMPV6) {
        u8 icmp[4];  // type, code, checksum: no ports in the key
        if (LOAD(ctx, off, icmp, sizeof(icmp)) < 0)
            m->truncated = 1;
    }
}

static __always_inline void parse_ipv4(CTX *ctx, u32 off, struct flow_key *k, struct meta *m)
{
    struct iphdr ip;
    if (LOAD(ctx, off, &ip, sizeof(ip)) < 0 || ip.version != 4 || ip.ihl < 5) {
        m->truncated = 1;  // keyed by ethertype only
        return;
    }
    k->l3 = 4;
    k->ipproto = ip.protocol;
    __builtin_memcpy(k->src, &ip.saddr, 4);
    __builtin_memcpy(k->dst, &ip.daddr, 4);
    m->ttl = ip.ttl;
    // Later fragments carry no L4 header: never read (invent) ports there.
    if (bpf_ntohs(ip.frag_off) & 0x1FFF)
        return;
    parse_l4(ctx, off + ip.ihl * 4, k, m);
}

static __always_inline void parse_ipv6(CTX *ctx, u32 off, struct flow_key *k, struct meta *m)
{
    struct ipv6hdr ip6;
    if (LOAD(ctx, off, &ip6, sizeof(ip6)) < 0 || ip6.version != 6) {
        m->truncated = 1;
        return;
    }
    k->l3 = 6;
    __builtin_memcpy(k->src, &ip6.saddr, 16);
    __builtin_memcpy(k->dst, &ip6.daddr, 16);
    m->ttl = ip6.hop_limit;
    u8 nexthdr = ip6.nexthdr;
    off += sizeof(ip6);

    // Walk extension headers up to a fixed bound; past it the packet is counted
    // under the last next-header value, without ports.
    for (int i = 0; i < MAX_IPV6_EXT; i++) {
        u8 ext[8];
        if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING &&
            nexthdr != IPPROTO_DSTOPTS && nexthdr != IPPROTO_FRAGMENT &&
            nexthdr != IPPROTO_AH) {
            k->ipproto = nexthdr;
            parse_l4(ctx, off, k, m);
            return;
        }
        if (LOAD(ctx, off, ext, sizeof(ext)) < 0) {
            k->ipproto = nexthdr;
            m->truncated = 1;
            return;
        }
        if (nexthdr == IPPROTO_FRAGMENT) {
            nexthdr = ext[0];
            off += 8;
            // Offset != 0: a later fragment, no L4 header in it.
            if ((((u16)ext[2] << 8) | ext[3]) & 0xFFF8) {
                k->ipproto = nexthdr;
                return;
            }
        } else if (nexthdr == IPPROTO_AH) {
            nexthdr = ext[0];
            off += ((u32)ext[1] + 2) * 4;
        } else {
            nexthdr = ext[0];
            off += ((u32)ext[1] + 1) * 8;
        }
    }
    k->ipproto = nexthdr;
}

// Fast path: one read of the frame's first bytes, and the common layouts parsed from
// it — no in-band VLAN tag (skb->vlan_tci is fine), IPv4 without options, IPv6
// without extension headers. Each helper read of non-linear data costs ~15-30 ns,
// and the general parser needs three. Returns 0 when the frame needs the general
// parser: anything else, or headers cut short (the general parser then gives the
// same result piecewise and marks the truncation). Offsets into h[] are constants,
// so the verifier needs no variable-offset stack access.
#define WIN 68  // Ethernet (14) + IPv6 (40) + TCP up to its flags (14)

static __always_inline int fast_l4(const u8 *h, u32 n, const u32 l4, struct flow_key *k,
                                   struct meta *m)
{
    u8 p = k->ipproto;
    if (p == IPPROTO_TCP) {
        if (n < l4 + 14)
            return 0;
        m->tcp_flags = h[l4 + 13];
    } else if (p == IPPROTO_UDP) {
        if (n < l4 + 8)
            return 0;
    } else if (p == IPPROTO_ICMP || p == IPPROTO_ICMPV6) {
        return n >= l4 + 4;  // type, code, checksum: no ports in the key
    } else {
        return 1;
    }
    k->sport = ((u16)h[l4] << 8) | h[l4 + 1];
    k->dport = ((u16)h[l4 + 2] << 8) | h[l4 + 3];
    k->has_ports = 1;
    return 1;
}

static __always_inline int parse_fast(CTX *ctx, struct flow_key *k, struct meta *m)
{
    u8 h[WIN];
    u64 n = m->caplen < WIN ? m->caplen : WIN;
    // Keep clang from bounds-checking a copy: the verifier must see n itself bounded.
    asm volatile("" : "+r"(n));
    if (n < 14 || n > WIN)
        return 0;
    if (LOAD(ctx, 0, h, n) < 0)
        return 0;
    u16 proto = ((u16)h[12] << 8) | h[13];
    if (proto == ETH_P_IP_) {
        if (n < 34 || h[14] != 0x45)  // version 4, ihl 5
            return 0;
        k->ipproto = h[23];
        // Later fragments carry no L4 header: never read (invent) ports there.
        if (!((((u16)h[20] << 8) | h[21]) & 0x1FFF) && !fast_l4(h, n, 34, k, m)) {
            k->ipproto = 0;
            return 0;
        }
        k->l3 = 4;
        __builtin_memcpy(k->src, &h[26], 4);
        __builtin_memcpy(k->dst, &h[30], 4);
        m->ttl = h[22];
    } else if (proto == ETH_P_IPV6_) {
        if (n < 54 || (h[14] >> 4) != 6)
            return 0;
        u8 nh = h[20];
        if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
            nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH)
            return 0;
        k->ipproto = nh;
        if (!fast_l4(h, n, 54, k, m)) {
            k->ipproto = 0;
            return 0;
        }
        k->l3 = 6;
        __builtin_memcpy(k->src, &h[22], 16);
        __builtin_memcpy(k->dst, &h[38], 16);
        m->ttl = h[21];
    } else if (proto == ETH_P_8021Q_ || proto == ETH_P_8021AD_) {
        return 0;
    }
    k->ethertype = proto;  // other ethertypes: counted by ethertype only
    return 1;
}

// General parser: any layout, one bounded read per header.
static __always_inline void parse(CTX *ctx, struct flow_key *k, struct meta *m)
{
    if (parse_fast(ctx, k, m))
        return;
    u8 eth[14];
    if (LOAD(ctx, 0, eth, sizeof(eth)) < 0) {
        m->truncated = 1;  // ethertype 0
        return;
    }
    u16 proto = ((u16)eth[12] << 8) | eth[13];
    u32 off = 14;

    // In-band tags (the outer one may already be in skb->vlan_tci).
    for (int i = 0; i < MAX_VLAN_TAGS; i++) {
        if (proto != ETH_P_8021Q_ && proto != ETH_P_8021AD_)
            break;
        u8 tag[4];  // TCI, encapsulated ethertype
        if (LOAD(ctx, off, tag, sizeof(tag)) < 0) {
            m->truncated = 1;
            break;
        }
        if (!m->vlan_seen)
            k->vlan = (((u16)tag[0] << 8) | tag[1]) & 0x0FFF;
        m->vlan_seen = 1;
        proto = ((u16)tag[2] << 8) | tag[3];
        off += 4;
    }
    k->ethertype = proto;
    if (m->truncated)
        return;
    if (proto == ETH_P_IP_)
        parse_ipv4(ctx, off, k, m);
    else if (proto == ETH_P_IPV6_)
        parse_ipv6(ctx, off, k, m);
}

static __always_inline void bump(struct counts *c, struct meta *m)
{
    if (c) {
        c->packets += m->segs;  // per-CPU value: no atomics needed
        c->bytes += m->length;
    } else {
        count_add(CNT_UNACCOUNTED, m->segs);
    }
}

// The two cumulative per-CPU tables below are written out twice because BCC only
// rewrites map accesses spelled table.method(), not map pointers or macros.
// An insert sets this CPU's slot and zeroes the others; if another CPU inserted
// first (EEXIST), we add into our slot of its entry.
static __always_inline void add_total(struct total_key *tk, struct meta *m)
{
    // An array slot is a few instructions where the hash lookup cost ~20-50 ns per
    // packet. A box's own interfaces have small ifindexes; large ones (e.g. veths
    // after much container churn) take the hash.
    if (tk->ifindex < TOTALS_SLOTS / 2) {
        u32 slot = tk->epoch * TOTALS_SLOTS + tk->ifindex * 2 + tk->dir;
        bump(totals_slots.lookup(&slot), m);
        return;
    }
    struct counts *c = totals.lookup(tk);
    if (!c) {
        struct counts init = {.packets = m->segs, .bytes = m->length};
        if (totals.insert(tk, &init) == 0)
            return;
        c = totals.lookup(tk);
    }
    bump(c, m);
}

static __always_inline void add_overflow(struct ovf_key *ok, struct meta *m)
{
    struct counts *c = overflow.lookup(ok);
    if (!c) {
        struct counts init = {.packets = m->segs, .bytes = m->length};
        if (overflow.insert(ok, &init) == 0)
            return;
        c = overflow.lookup(ok);
    }
    bump(c, m);
}

static __always_inline void add_flow(struct flow_key *k, struct meta *m, u32 e)
{
    int slot = e;
    void *flows = active_flows.lookup(&slot);
    if (flows) {
        struct flow_val *v = bpf_map_lookup_elem(flows, k);
        if (!v) {
            u64 now = bpf_ktime_get_ns();
            struct flow_val init = {
                .packets = m->segs, .bytes = m->length,
                .first_ns = now, .last_ns = now, .tcp_flags = m->tcp_flags,
            };
            if (bpf_map_update_elem(flows, k, &init, BPF_NOEXIST) == 0)
                return;
            v = bpf_map_lookup_elem(flows, k);  // lost an insert race, or full
        }
        if (v) {
#if PERCPU_FLOWS
            v->packets += m->segs;
            v->bytes += m->length;
            v->tcp_flags |= m->tcp_flags;
            if (!v->first_ns)  // first packet of this flow on this CPU
                v->first_ns = v->last_ns = bpf_ktime_get_ns();
#else
            __sync_fetch_and_add(&v->packets, m->segs);
            __sync_fetch_and_add(&v->bytes, m->length);
            // Read first: most packets add no new flag, and a plain load is cheap.
            // Not at all without flags (UDP, ...): tcp_flags may sit on a cache line
            // of the entry that this packet would otherwise not touch.
            if (m->tcp_flags && (v->tcp_flags | m->tcp_flags) != v->tcp_flags)
                __sync_fetch_and_or(&v->tcp_flags, m->tcp_flags);
#endif
            return;
        }
    }
    // Table full: keep the packet in the (interface, direction, protocol) bucket.
    count_add(CNT_OVERFLOW, m->segs);
    struct ovf_key ok = {};
    ok.ifindex = k->ifindex;
    ok.dir = k->dir;
    ok.l3 = k->l3;
    ok.ipproto = k->ipproto;
    ok.ethertype = k->ethertype;
    ok.epoch = e;
    add_overflow(&ok, m);
}

static __always_inline void maybe_sample(struct flow_key *k, struct meta *m)
{
#if SAMPLE_N > 0
    int zero = 0;
    struct bucket *b = sample_bucket.lookup(&zero);
    if (!b)
        return;
    // Each packet is sampled with probability 1/N, decided by a per-CPU xorshift64
    // generator seeded from bpf_get_prandom_u32: a helper call per packet cost ~13 ns.
    // Sampled when the top 32 bits fall below 2^32 / N (folded at compile time): a
    // modulo here was a 64-bit division per packet, ~40 ns measured with bpf_stats.
    u64 x = b->rng;
    if (!x)
        x = ((u64)bpf_get_prandom_u32() << 32) | bpf_get_prandom_u32() | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b->rng = x;
    if ((x >> 32) >= 0x100000000ULL / SAMPLE_N)
        return;
    // Per-CPU token bucket (kept as time allowance) so a flood cannot turn the
    // sample stream into an unthrottled per-packet stream.
    u64 now = bpf_ktime_get_ns();
    u64 budget = b->budget_ns + (now - b->last_ns);
    if (b->last_ns == 0 || budget > SAMPLE_BURST * SAMPLE_COST_NS)
        budget = SAMPLE_BURST * SAMPLE_COST_NS;
    b->last_ns = now;
    if (budget < SAMPLE_COST_NS) {
        b->budget_ns = budget;
        count_add(CNT_RATE_LIMITED, 1);
        return;
    }
    b->budget_ns = budget - SAMPLE_COST_NS;
    struct sample *s = samples.ringbuf_reserve(sizeof(struct sample));
    if (!s) {
        count_add(CNT_RINGBUF_LOST, 1);
        return;
    }
    __builtin_memcpy(&s->key, k, sizeof(*k));
    s->ts_ns = now;
    s->length = m->length;
    s->ttl = m->ttl;
    s->tcp_flags = m->tcp_flags;
    s->pad = 0;
    samples.ringbuf_submit(s, 0);
    count_add(CNT_SAMPLED, 1);
#endif
}

static __always_inline void observe(CTX *ctx, struct flow_key *k, struct meta *m)
{
    parse(ctx, k, m);
    if (m->truncated)
        count_add(CNT_TRUNCATED, 1);

    // One read of the epoch per packet: its totals and its flow go to the same one.
    int zero = 0;
    u32 *now_epoch = current_epoch.lookup(&zero);
    u32 e = now_epoch ? *now_epoch & 1 : 0;
    struct total_key tk = {.ifindex = k->ifindex, .dir = k->dir, .epoch = e};
    add_total(&tk, m);
    add_flow(k, m, e);
    maybe_sample(k, m);
}

#ifdef SITEVIS_XDP
int sitevis_xdp(struct xdp_md *ctx)
{
    struct flow_key k = {};
    struct meta m = {};
    k.ifindex = ctx->ingress_ifindex;
    k.dir = DIR_INGRESS;
    m.length = bpf_xdp_get_buff_len(ctx);  // includes multi-buffer fragments
    m.segs = 1;
    m.caplen = m.length;
    observe(ctx, &k, &m);
    return XDP_PASS;
}
#else
static __always_inline int tc_observe(struct __sk_buff *skb, u8 dir)
{
    struct flow_key k = {};
    struct meta m = {};
    k.ifindex = skb->ifindex;
    k.dir = dir;
    m.length = skb->len;
    m.caplen = skb->len;
    // The kernel moved the outer tag into vlan_tci: it was (or will be) 4 bytes
    // on the wire, and it is the outermost VLAN id.
    if (skb->vlan_present) {
        m.length += 4;
        k.vlan = skb->vlan_tci & 0x0FFF;
        m.vlan_seen = 1;
    }
    // A GSO super-packet is gso_segs frames on the wire (bytes: headers once).
    m.segs = skb->gso_segs > 1 ? skb->gso_segs : 1;
    observe(skb, &k, &m);
    return TC_ACT_UNSPEC;
}

int sitevis_ingress(struct __sk_buff *skb)
{
    return tc_observe(skb, DIR_INGRESS);
}

int sitevis_egress(struct __sk_buff *skb)
{
    return tc_observe(skb, DIR_EGRESS);
}
#endif
