"""The harness itself: real BCC on a real veth, a real influxd."""

from __future__ import annotations

import time
from pathlib import Path

from tests.harness.influx import InfluxServer
from tests.harness.netns import Host, HostPair

COUNTED_PORT = 40000
OTHER_PORT = 40001
SENDER = """
import socket, sys
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b"sitevis-%d" % i, (dst, port))
"""


def send_udp(src: Host, dst_ip: str, port: int, count: int) -> None:
    src.exec("python3", "-c", SENDER, dst_ip, str(port), str(count))


def test_bcc_tc_program_counts_exactly_the_udp_packets_sent(bcc_ready, host_pair: HostPair):
    from bcc import BPF
    from pyroute2 import NetNS

    source = Path(__file__).with_name("udp_counter.c").read_bytes()
    bpf = BPF(text=source, cflags=[f"-DDPORT={COUNTED_PORT}"])
    fn = bpf.load_func("count_udp", BPF.SCHED_CLS)
    receiver = host_pair.right
    with NetNS(receiver.netns) as ns:
        idx = ns.link_lookup(ifname=receiver.ifname)[0]
        ns.tc("add", "clsact", idx)
        ns.tc("add-filter", "bpf", idx, ":1", fd=fn.fd, name=fn.name,
              parent="ffff:fff2", classid=1, direct_action=True)
        sent = 1234
        send_udp(host_pair.left, receiver.ip, COUNTED_PORT, sent)
        send_udp(host_pair.left, receiver.ip, OTHER_PORT, 321)
        time.sleep(0.2)
        counted = sum(v.value for v in bpf["hits"].values())
    # Exact: every packet to the counted port, none of the others.
    assert counted == sent


def test_influxdb_point_written_is_read_back(influxdb: InfluxServer):
    influxdb.query("CREATE DATABASE harness")
    status = influxdb.write("harness", 'probe,box=b1 packets=42i,bytes=4200i 1700000000000000000')
    assert status == 204
    rows = influxdb.rows("SELECT packets, bytes FROM probe WHERE box = 'b1'", db="harness")
    assert rows == [{"time": 1700000000000000000, "packets": 42, "bytes": 4200}]


def test_influxdb_with_auth_rejects_anonymous_writes(influxdb_auth: InfluxServer):
    influxdb_auth.query("CREATE USER admin WITH PASSWORD 'pw-admin' WITH ALL PRIVILEGES")
    admin = ("admin", "pw-admin")
    influxdb_auth.query("CREATE DATABASE harness", auth=admin)
    assert influxdb_auth.write("harness", "probe value=1i") == 401
    assert influxdb_auth.write("harness", "probe value=1i", auth=admin) == 204
