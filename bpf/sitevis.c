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

#include "sitevis_types.h"

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

#include "sitevis_parse.h"

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
