"""Inside the box container: headers linked, and a BPF program loads and attaches."""

import json

# Compiles a TC program, attaches it to a veth of the container and reports. (veth, not
# dummy: kernels without loadable modules may lack the dummy driver.)
LOAD_AND_ATTACH = r'''
import json
from bcc import BPF
from pyroute2 import IPRoute
prog = b"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
int observe(struct __sk_buff *skb) { return TC_ACT_UNSPEC; }
"""
fn = BPF(text=prog).load_func("observe", BPF.SCHED_CLS)
with IPRoute() as ipr:
    ipr.link("add", ifname="svprobe0", kind="veth", peer="svprobe1")
    idx = ipr.link_lookup(ifname="svprobe0")[0]
    try:
        ipr.tc("add", "clsact", idx)
        ipr.tc("add-filter", "bpf", idx, ":1", fd=fn.fd, name=fn.name,
               parent="ffff:fff3", classid=1, direct_action=True)
        filters = [f.get_attr("TCA_OPTIONS").get_attr("TCA_BPF_NAME")
                   for f in ipr.get_filters(idx, parent=0xFFFFFFF3)
                   if f.get_attr("TCA_OPTIONS") is not None]
    finally:
        ipr.link("del", index=idx)
print(json.dumps({"fd": fn.fd, "filters": filters}))
'''


def test_headers_are_linked_for_the_running_kernel(host):
    release = host.check_output("uname -r")
    build = host.file(f"/lib/modules/{release}/build")
    source = host.file(f"/lib/modules/{release}/source")
    assert build.is_symlink and build.linked_to.startswith("/usr/src/linux-headers-")
    assert source.is_symlink
    assert host.file(f"/lib/modules/{release}/source/include/linux/kconfig.h").exists


def test_bcc_packages_are_installed(host):
    for name in ("python3-bpfcc", "bpfcc-tools", "python3-pyroute2"):
        assert host.package(name).is_installed, name


def test_a_tc_program_loads_and_attaches_inside_the_box(host):
    result = host.run("python3 -c %s", LOAD_AND_ATTACH)
    assert result.rc == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["fd"] > 0
    assert report["filters"] == ["observe"]
