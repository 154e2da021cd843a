// Reference (b) for the sitevis benchmark: a minimal flow program.
// Ethernet -> IPv4 (honouring ihl) -> UDP/TCP ports, keyed by the 5-tuple in a
// per-CPU hash; anything else is counted in one per-CPU slot. Observe-only.
//
// Headers are read with bpf_skb_load_bytes, not direct packet access: with an
// AF_PACKET TX_RING sender (trafgen) only the Ethernet header is in the skb's
// linear area, so a direct read would misparse (see DESIGN.md). That keeps this
// reference correct, which is what sitevis is compared against.
#include <uapi/linux/bpf.h>
#include <uapi/linux/in.h>
#include <uapi/linux/pkt_cls.h>

#ifndef FLOW_ENTRIES
#define FLOW_ENTRIES 65536
#endif

struct key5 {
    u32 saddr;
    u32 daddr;
    u16 sport;
    u16 dport;
    u8 proto;
    u8 pad[3];
};

struct val5 {
    u64 packets;
    u64 bytes;
};

BPF_PERCPU_HASH(flows, struct key5, struct val5, FLOW_ENTRIES);
BPF_PERCPU_ARRAY(other, u64, 1);  // not IPv4, or the table was full

int bench_flow5(struct __sk_buff *skb)
{
    u8 hdr[34];  // Ethernet (14) + IPv4 without options (20)
    struct key5 k = {};
    int zero = 0;

    if (bpf_skb_load_bytes(skb, 0, hdr, sizeof(hdr)) < 0)
        goto other;
    if (hdr[12] != 0x08 || hdr[13] != 0x00 || (hdr[14] >> 4) != 4)
        goto other;
    k.proto = hdr[23];
    __builtin_memcpy(&k.saddr, &hdr[26], 4);
    __builtin_memcpy(&k.daddr, &hdr[30], 4);
    if (k.proto == IPPROTO_UDP || k.proto == IPPROTO_TCP) {
        u8 ports[4];
        u32 off = 14 + (u32)(hdr[14] & 0x0F) * 4;
        if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) == 0) {
            k.sport = ((u16)ports[0] << 8) | ports[1];
            k.dport = ((u16)ports[2] << 8) | ports[3];
        }
    }

    struct val5 *v = flows.lookup(&k);
    if (v) {
        v->packets += 1;
        v->bytes += skb->len;
        return TC_ACT_UNSPEC;
    }
    struct val5 init = {.packets = 1, .bytes = skb->len};
    if (flows.update(&k, &init) == 0)
        return TC_ACT_UNSPEC;
other:;
    u64 *count = other.lookup(&zero);
    if (count)
        *count += 1;
    return TC_ACT_UNSPEC;
}
