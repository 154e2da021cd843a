// sitevis: the types, counter indices and constants shared by the BPF program and
// the collector — the kernel<->Python contract. The collector mirrors the structs in
// collector/src/sitevis_collector/structs.py and, at every load, compares them field by
// field (name, offset, size) with the layout BCC built from this file, and the
// counter indices below with its own (layout.py): a mismatch is a one-line error.
#ifndef SITEVIS_TYPES_H
#define SITEVIS_TYPES_H

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

#endif
