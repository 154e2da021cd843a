// sitevis: packet parsing. Fills the flow key and the per-packet facts (struct meta)
// from a frame, with bounded reads the verifier accepts; never drops or changes it.
// Needs CTX and LOAD (TC or XDP) and the types from sitevis_types.h.
#ifndef SITEVIS_PARSE_H
#define SITEVIS_PARSE_H

struct meta {
    u32 length;      // frame bytes on the wire without FCS
    u32 segs;        // wire frames (GSO segments)
    u8 tcp_flags;
    u8 ttl;
    u8 truncated;
    u8 vlan_seen;    // outermost VLAN id already taken
    u32 caplen;      // bytes readable from offset 0 (skb->len, XDP buffer length)
};

// The fast path's fixed layouts: offsets into the frame (no in-band VLAN tag) and
// into an L4 header. Constants, so the verifier sees bounded stack reads.
#define ETH_TYPE_OFF 12
#define ETH_HDR_LEN 14
#define IP4_VER_IHL (ETH_HDR_LEN + 0)    // 0x45: version 4, no options
#define IP4_FRAG (ETH_HDR_LEN + 6)       // flags + fragment offset
#define IP4_TTL (ETH_HDR_LEN + 8)
#define IP4_PROTO (ETH_HDR_LEN + 9)
#define IP4_SRC (ETH_HDR_LEN + 12)
#define IP4_DST (ETH_HDR_LEN + 16)
#define IP4_L4 (ETH_HDR_LEN + 20)        // the L4 header after 20 bytes of IPv4
#define IP6_NEXT (ETH_HDR_LEN + 6)
#define IP6_HOPS (ETH_HDR_LEN + 7)
#define IP6_SRC (ETH_HDR_LEN + 8)
#define IP6_DST (ETH_HDR_LEN + 24)
#define IP6_L4 (ETH_HDR_LEN + 40)        // the L4 header after 40 bytes of IPv6
#define L4_SPORT 0
#define L4_DPORT 2
#define TCP_FLAGS 13
#define TCP_MIN 14                       // ports, seq, ack, data offset, flags
#define UDP_MIN 8
#define ICMP_MIN 4                       // type, code, checksum

static __always_inline void parse_l4(CTX *ctx, u32 off, struct flow_key *k, struct meta *m)
{
    if (k->ipproto == IPPROTO_TCP) {
        u8 tcp[TCP_MIN];
        if (LOAD(ctx, off, tcp, sizeof(tcp)) < 0) {
            m->truncated = 1;
            return;
        }
        k->sport = ((u16)tcp[L4_SPORT] << 8) | tcp[L4_SPORT + 1];
        k->dport = ((u16)tcp[L4_DPORT] << 8) | tcp[L4_DPORT + 1];
        k->has_ports = 1;
        m->tcp_flags = tcp[TCP_FLAGS];
    } else if (k->ipproto == IPPROTO_UDP) {
        u8 udp[UDP_MIN];
        if (LOAD(ctx, off, udp, sizeof(udp)) < 0) {
            m->truncated = 1;
            return;
        }
        k->sport = ((u16)udp[L4_SPORT] << 8) | udp[L4_SPORT + 1];
        k->dport = ((u16)udp[L4_DPORT] << 8) | udp[L4_DPORT + 1];
        k->has_ports = 1;
    } else if (k->ipproto == IPPROTO_ICMP || k->ipproto == IPPROTO_ICMPV6) {
        u8 icmp[ICMP_MIN];  // no ports in the key
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
#define WIN (IP6_L4 + TCP_MIN)  // 68: Ethernet, IPv6, TCP up to its flags

static __always_inline int fast_l4(const u8 *h, u32 n, const u32 l4, struct flow_key *k,
                                   struct meta *m)
{
    u8 p = k->ipproto;
    if (p == IPPROTO_TCP) {
        if (n < l4 + TCP_MIN)
            return 0;
        m->tcp_flags = h[l4 + TCP_FLAGS];
    } else if (p == IPPROTO_UDP) {
        if (n < l4 + UDP_MIN)
            return 0;
    } else if (p == IPPROTO_ICMP || p == IPPROTO_ICMPV6) {
        return n >= l4 + ICMP_MIN;  // no ports in the key
    } else {
        return 1;
    }
    k->sport = ((u16)h[l4 + L4_SPORT] << 8) | h[l4 + L4_SPORT + 1];
    k->dport = ((u16)h[l4 + L4_DPORT] << 8) | h[l4 + L4_DPORT + 1];
    k->has_ports = 1;
    return 1;
}

static __always_inline int parse_fast(CTX *ctx, struct flow_key *k, struct meta *m)
{
    u8 h[WIN];
    u64 n = m->caplen < WIN ? m->caplen : WIN;
    // Keep clang from bounds-checking a copy: the verifier must see n itself bounded.
    asm volatile("" : "+r"(n));
    if (n > WIN)
        return 0;
    // Two tests, not clang's (n - 14) > 54: the 6.1 verifier bounds n only from n itself.
    asm volatile("" : "+r"(n));
    if (n < ETH_HDR_LEN)
        return 0;
    if (LOAD(ctx, 0, h, n) < 0)
        return 0;
    u16 proto = ((u16)h[ETH_TYPE_OFF] << 8) | h[ETH_TYPE_OFF + 1];
    if (proto == ETH_P_IP_) {
        if (n < IP4_L4 || h[IP4_VER_IHL] != 0x45)  // version 4, ihl 5
            return 0;
        k->ipproto = h[IP4_PROTO];
        // Later fragments carry no L4 header: never read (invent) ports there.
        if (!((((u16)h[IP4_FRAG] << 8) | h[IP4_FRAG + 1]) & 0x1FFF) &&
            !fast_l4(h, n, IP4_L4, k, m)) {
            k->ipproto = 0;
            return 0;
        }
        k->l3 = 4;
        __builtin_memcpy(k->src, &h[IP4_SRC], 4);
        __builtin_memcpy(k->dst, &h[IP4_DST], 4);
        m->ttl = h[IP4_TTL];
    } else if (proto == ETH_P_IPV6_) {
        if (n < IP6_L4 || (h[ETH_HDR_LEN] >> 4) != 6)
            return 0;
        u8 nh = h[IP6_NEXT];
        if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
            nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH)
            return 0;
        k->ipproto = nh;
        if (!fast_l4(h, n, IP6_L4, k, m)) {
            k->ipproto = 0;
            return 0;
        }
        k->l3 = 6;
        __builtin_memcpy(k->src, &h[IP6_SRC], 16);
        __builtin_memcpy(k->dst, &h[IP6_DST], 16);
        m->ttl = h[IP6_HOPS];
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

#endif
