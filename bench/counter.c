// Reference (a) for the sitevis benchmark: the cheapest useful TC program.
// One per-CPU array slot counts packets; nothing is parsed. Observe-only.
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>

BPF_PERCPU_ARRAY(packets, u64, 1);

int bench_counter(struct __sk_buff *skb)
{
    int zero = 0;
    u64 *count = packets.lookup(&zero);
    if (count)
        *count += 1;
    return TC_ACT_UNSPEC;
}
