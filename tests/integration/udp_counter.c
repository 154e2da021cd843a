// Counts UDP/IPv4 packets to one destination port at a TC hook; observe-only.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/pkt_cls.h>

BPF_ARRAY(hits, u64, 1);

int count_udp(struct __sk_buff *skb)
{
    struct iphdr ip;
    struct udphdr udp;

    if (skb->protocol != htons(ETH_P_IP))
        return TC_ACT_UNSPEC;
    if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0 || ip.protocol != IPPROTO_UDP)
        return TC_ACT_UNSPEC;
    if (bpf_skb_load_bytes(skb, ETH_HLEN + ip.ihl * 4, &udp, sizeof(udp)) < 0)
        return TC_ACT_UNSPEC;
    if (udp.dest == htons(DPORT)) {
        int key = 0;
        u64 *val = hits.lookup(&key);
        if (val)
            __sync_fetch_and_add(val, 1);
    }
    return TC_ACT_UNSPEC;
}
