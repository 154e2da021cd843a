"""Delivery rules against a real influxd: outages, restarts, rejections, auth, batching."""

from __future__ import annotations

import base64
import gzip
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sitevis_collector.config import parse_config
from sitevis_collector.export.delivery import InfluxWriter, split_batches
from sitevis_collector.export.lineproto import Point, encode_lines
from sitevis_collector.export.spool import SpoolUnusable

from tests.harness.influx import InfluxServer, find_influxd

DB = "sitevis"
T0 = 1_800_000_000_000_000_000

WriterFactory = Callable[..., InfluxWriter]


@pytest.fixture
def make_writer(tmp_path: Path) -> Iterator[WriterFactory]:
    """Writers with short backoffs; every one is closed at the end of the test."""
    made: list[InfluxWriter] = []

    def make(url: str, db: str = DB, spool_max: int = 64 * 1024 * 1024,
             spool_dir: Path | None = None, **influx) -> InfluxWriter:
        cfg = parse_config({
            "site": "t", "box": "b",
            "influxdb": {"url": url, "database": db, "retry_initial": 0.05,
                         "retry_max": 0.2, "timeout": 2, **influx},
            "spool": {"dir": str(spool_dir or tmp_path / "spool"), "max_bytes": spool_max},
        })
        writer = InfluxWriter(cfg.influxdb, cfg.spool)
        made.append(writer)
        return writer

    yield make
    for writer in made:
        writer.close(0)


def interval_points(interval: int, n: int, measurement: str = "m") -> list[Point]:
    ts = T0 + interval * 10_000_000_000
    return [Point(measurement, {"iface": f"eth{i % 4}", "n": str(i)}, {"v": interval}, ts)
            for i in range(n)]


def count(server: InfluxServer, measurement: str = "m", db: str = DB) -> int:
    rows = server.rows(f'SELECT COUNT(v) FROM "{measurement}"', db=db)
    return rows[0]["count"] if rows else 0


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_points_are_written_and_counted(influxdb: InfluxServer, make_writer):
    influxdb.query(f"CREATE DATABASE {DB}")
    writer = make_writer(influxdb.url)
    writer.submit(interval_points(0, 100))
    assert writer.flush(10)
    assert count(influxdb) == 100
    c = writer.counters()
    assert c["points_written"] == 100 and c["batches_written"] == 1
    assert c["write_errors"] == 0 and c["spool_bytes"] == 0


def test_outage_during_a_stream_every_point_arrives_exactly_once(
        influxdb: InfluxServer, make_writer):
    influxdb.query(f"CREATE DATABASE {DB}")
    writer = make_writer(influxdb.url)
    intervals, per_interval = 30, 50
    max_spooled = 0
    for i in range(intervals):
        if i == 8:
            influxdb.stop()
        if i == 22:
            influxdb.start()
        writer.submit(interval_points(i, per_interval))
        time.sleep(0.05)
        max_spooled = max(max_spooled, writer.counters()["spool_files"])
    assert writer.flush(30)
    c = writer.counters()
    assert max_spooled > 0, "the outage never reached the spool"
    assert c["write_errors_conn"] > 0
    # Each point acknowledged once by the server, and each one stored.
    assert c["points_written"] == intervals * per_interval
    assert count(influxdb) == intervals * per_interval
    assert c["spool_bytes"] == 0 and c["spool_files"] == 0 and c["points_dropped"] == 0
    end = T0 + intervals * 10_000_000_000
    per = influxdb.rows(f"SELECT COUNT(v) FROM m WHERE time >= {T0} AND time < {end}"
                        " GROUP BY time(10s)", db=DB)
    assert [r["count"] for r in per] == [per_interval] * intervals


def order_points(batch: int, last: int) -> list[Point]:
    """Batch i overwrites key k<j> (j >= i) with value i: only in-order delivery leaves
    k<j> == j for every j, any swap of two batches leaves a smaller value behind."""
    points = [Point("order", {"k": str(j)}, {"v": batch}, T0) for j in range(batch, last + 1)]
    points += [Point("m", {"batch": str(batch), "n": str(n)}, {"v": batch}, T0 + n)
               for n in range(20)]
    return points


def assert_in_order(server: InfluxServer, last: int) -> None:
    rows = server.rows("SELECT v FROM \"order\" GROUP BY k", db=DB)
    assert {int(r["k"]): r["v"] for r in rows} == {j: j for j in range(1, last + 1)}
    assert count(server) == 20 * last


def test_spool_replays_in_order_in_a_new_writer(influxdb: InfluxServer, make_writer,
                                                tmp_path: Path):
    influxdb.query(f"CREATE DATABASE {DB}")
    influxdb.stop()
    first = make_writer(influxdb.url)
    for batch in range(1, 6):
        first.submit(order_points(batch, 6))
    assert first.close(0.3) is False              # nothing could be delivered
    spooled = sorted(p.name for p in (tmp_path / "spool").iterdir())
    assert len(spooled) == 5 and all(name.endswith(".lp.gz") for name in spooled)
    del first

    influxdb.start()
    second = make_writer(influxdb.url)
    assert second.counters()["spool_files"] == 5
    second.submit(order_points(6, 6))
    assert second.flush(15)
    assert_in_order(influxdb, 6)
    assert second.counters()["points_written"] == sum(len(order_points(b, 6))
                                                      for b in range(1, 7))
    assert list((tmp_path / "spool").iterdir()) == []


CRASHING_WRITER = """
import sys, time
from sitevis_collector.config import parse_config
from sitevis_collector.export.delivery import InfluxWriter
from sitevis_collector.export.lineproto import Point
url, spool = sys.argv[1], sys.argv[2]
cfg = parse_config({"site": "t", "influxdb": {"url": url, "database": "sitevis",
                    "retry_initial": 0.05, "retry_max": 0.1}, "spool": {"dir": spool}})
w = InfluxWriter(cfg.influxdb, cfg.spool)
T0 = int(sys.argv[3])
for batch in range(1, 5):
    w.submit([Point("order", {"k": str(j)}, {"v": batch}, T0) for j in range(batch, 6)]
             + [Point("m", {"batch": str(batch), "n": str(n)}, {"v": batch}, T0 + n)
                for n in range(20)])
    time.sleep(0.1)
while w.counters()["spool_files"] < 4:
    time.sleep(0.02)
print("spooled", flush=True)
time.sleep(60)
"""


def test_spool_replays_in_order_after_a_crash(influxdb: InfluxServer, make_writer,
                                              tmp_path: Path):
    influxdb.query(f"CREATE DATABASE {DB}")
    influxdb.stop()
    spool = tmp_path / "spool"
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, influxdb.url, str(spool), str(T0)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "spooled"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    influxdb.start()
    writer = make_writer(influxdb.url)
    writer.submit(order_points(5, 5))
    assert writer.flush(15)
    assert_in_order(influxdb, 5)


def test_4xx_is_not_retried_and_is_counted(influxdb: InfluxServer, make_writer, caplog):
    writer = make_writer(influxdb.url, db="does_not_exist")
    with caplog.at_level(logging.ERROR, logger="sitevis_collector.export.delivery"):
        writer.submit(interval_points(0, 10))
        assert writer.flush(10)                  # done: nothing left to deliver
        time.sleep(0.5)                          # ten backoff periods: no retry happens
    c = writer.counters()
    assert c["write_errors_4xx"] == 1 and c["retries"] == 0
    assert c["points_rejected"] == 10 and c["points_written"] == 0
    assert c["spool_files"] == 0
    assert "database not found" in caplog.text


def test_partial_write_counts_only_the_dropped_points(influxdb: InfluxServer, make_writer):
    influxdb.query(f"CREATE DATABASE {DB}")
    assert influxdb.write(DB, f"m,n=first v=1i {T0}") == 204
    writer = make_writer(influxdb.url)
    points = interval_points(1, 5)
    points.append(Point("m", {"n": "conflict"}, {"v": 1.5}, T0))   # v is an integer field
    writer.submit(points)
    assert writer.flush(10)
    writer.submit(interval_points(2, 5))       # the next interval is not held up
    assert writer.flush(10)
    c = writer.counters()
    assert c["partial_writes"] == 1 and c["write_errors_4xx"] == 1 and c["retries"] == 0
    assert c["points_rejected"] == 1
    assert c["points_written"] == 10
    assert count(influxdb) == 1 + 10


def test_malformed_line_is_rejected_without_retry(influxdb: InfluxServer, make_writer):
    influxdb.query(f"CREATE DATABASE {DB}")
    writer = make_writer(influxdb.url)
    writer.submit_lines([b"this is not line protocol\n"])
    writer.submit(interval_points(0, 3))
    assert writer.flush(10)
    c = writer.counters()
    assert c["write_errors_4xx"] == 1 and c["points_rejected"] == 1 and c["retries"] == 0
    assert count(influxdb) == 3


def test_full_spool_drops_the_oldest_and_counts_them(influxdb: InfluxServer, make_writer,
                                                     tmp_path: Path):
    influxdb.query(f"CREATE DATABASE {DB}")
    influxdb.stop()
    spool_max = 12_000
    writer = make_writer(influxdb.url, spool_max=spool_max)

    def noisy(batch: int) -> list[Point]:
        # ~2.7 kB of incompressible text per batch, so a few batches fill the spool.
        blob = base64.b64encode(os.urandom(2000)).decode()
        return [Point("m", {"batch": str(batch)}, {"v": batch, "blob": blob}, T0 + batch)]

    batches = 12
    for batch in range(batches):
        writer.submit(noisy(batch))
        assert writer.counters()["spool_bytes"] <= spool_max
    assert writer.flush(0.2) is False
    c = writer.counters()
    dropped = c["points_dropped"]
    assert 0 < dropped < batches
    assert c["spool_files"] == batches - dropped
    assert c["spool_bytes"] <= spool_max

    influxdb.start()
    assert writer.flush(15)
    kept = sorted(r["v"] for r in influxdb.rows("SELECT v FROM m", db=DB))
    # The newest survive, the oldest went: exactly those counted as dropped.
    assert kept == list(range(dropped, batches))


def test_auth_right_credentials_write_and_wrong_ones_count_as_4xx(
        influxdb_auth: InfluxServer, make_writer, tmp_path: Path, caplog):
    admin = ("admin", "pw-admin")
    influxdb_auth.query("CREATE USER admin WITH PASSWORD 'pw-admin' WITH ALL PRIVILEGES")
    influxdb_auth.query(f"CREATE DATABASE {DB}", auth=admin)
    influxdb_auth.query("CREATE USER collector WITH PASSWORD 'c0ll=ctor pw'", auth=admin)
    influxdb_auth.query(f'GRANT WRITE ON "{DB}" TO collector', auth=admin)

    good = make_writer(influxdb_auth.url, username="collector", password="c0ll=ctor pw",
                       spool_dir=tmp_path / "good")
    good.submit(interval_points(0, 10))
    assert good.flush(10)
    assert good.counters()["points_written"] == 10

    with caplog.at_level(logging.DEBUG, logger="sitevis_collector"):
        bad = make_writer(influxdb_auth.url, username="collector", password="wr0ng-secret",
                          spool_dir=tmp_path / "bad")
        bad.submit(interval_points(1, 10))
        assert bad.flush(10)
        time.sleep(0.3)
    c = bad.counters()
    assert c["write_errors_4xx"] == 1 and c["points_rejected"] == 10 and c["retries"] == 0
    assert "401" in caplog.text
    assert "wr0ng-secret" not in caplog.text
    assert base64.b64encode(b"collector:wr0ng-secret").decode() not in caplog.text

    rows = influxdb_auth.query("SELECT COUNT(v) FROM m", db=DB, auth=admin)
    assert rows["results"][0]["series"][0]["values"][0][1] == 10


def test_split_batches_stay_under_the_limit_and_keep_every_line():
    lines = encode_lines(interval_points(0, 500))
    limit = 2048
    batches = split_batches(lines, limit)
    assert len(batches) > 1
    assert all(len(body) <= limit for body, _ in batches)
    assert all(body.count(b"\n") == n for body, n in batches)
    assert b"".join(body for body, _ in batches) == b"".join(lines)
    # A line longer than the limit goes alone, uncut.
    huge = b"x" * 5000 + b"\n"
    assert split_batches([b"a\n", huge, b"b\n"], limit) == [(b"a\n", 1), (huge, 1), (b"b\n", 1)]


def test_writer_sends_batches_under_the_limit(influxdb: InfluxServer, make_writer):
    influxdb.query(f"CREATE DATABASE {DB}")
    limit = 4096
    writer = make_writer(influxdb.url, batch_max_bytes=limit)
    points = interval_points(0, 1000)
    writer.submit(points)
    assert writer.flush(15)
    expected = split_batches(encode_lines(points), limit)
    assert writer.counters()["batches_written"] == len(expected) > 5
    assert count(influxdb) == 1000


def test_spool_files_hold_the_gzip_body_as_sent(influxdb: InfluxServer, make_writer,
                                                tmp_path: Path):
    influxdb.stop()
    writer = make_writer(influxdb.url)
    points = interval_points(3, 7)
    writer.submit(points)
    assert writer.flush(0.2) is False
    [spooled] = list((tmp_path / "spool").iterdir())
    assert spooled.name.endswith("-7.lp.gz")
    assert gzip.decompress(spooled.read_bytes()) == b"".join(encode_lines(points))


def test_memory_queue_is_bounded_and_overflow_keeps_order(influxdb: InfluxServer, make_writer):
    influxdb.query(f"CREATE DATABASE {DB}")
    queue_max = 2048
    writer = make_writer(influxdb.url, batch_max_bytes=1024, queue_max_bytes=queue_max)
    last = 20
    for batch in range(1, last + 1):
        # Several requests per submit: more than the queue holds, the rest goes to disk.
        writer.submit(order_points(batch, last) + interval_points(batch, 60, "bulk"))
        assert writer.counters()["queue_bytes"] <= queue_max
    assert writer.flush(20)
    assert_in_order(influxdb, last)
    assert count(influxdb, "bulk") == 60 * last
    assert writer.counters()["points_dropped"] == 0


class TLSInfluxServer(InfluxServer):
    """The harness's influxd, serving HTTPS with a given certificate."""

    def __init__(self, binary: str, cert: Path, key: Path) -> None:
        self._tls = (cert, key)
        super().__init__(binary)
        self.url = self.url.replace("http://", "https://")

    def _write_config(self) -> None:
        super()._write_config()
        cert, key = self._tls
        with self.config.open("a") as conf:     # [http] is the last section
            conf.write(f'  https-enabled = true\n  https-certificate = "{cert}"\n'
                       f'  https-private-key = "{key}"\n')


@pytest.fixture
def influxdb_tls(tmp_path: Path, monkeypatch) -> Iterator[tuple[InfluxServer, Path]]:
    """influxd over HTTPS with a self-signed certificate for 127.0.0.1; yields (server, ca)."""
    binary = find_influxd()
    if binary is None:
        pytest.skip("influxd not installed (Debian package influxdb)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed (needed to make a test certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server = TLSInfluxServer(binary, cert, key)
    # The harness's own requests (ping, query) trust the test certificate this way;
    # the writers under test get it (or not) through their config only.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    try:
        server.start()
        server.query(f"CREATE DATABASE {DB}")
        yield server, cert
    finally:
        server.cleanup()


def test_tls_with_ca_file_and_with_verification_off(influxdb_tls, make_writer, tmp_path,
                                                    monkeypatch):
    server, ca = influxdb_tls
    trusted = make_writer(server.url, tls={"ca_file": str(ca)}, spool_dir=tmp_path / "a")
    insecure = make_writer(server.url, tls={"insecure_skip_verify": True},
                           spool_dir=tmp_path / "b")
    trusted.submit(interval_points(0, 5))
    insecure.submit(interval_points(1, 5))
    assert trusted.flush(10) and insecure.flush(10)
    assert count(server) == 10

    # Neither a CA file nor verification off: the certificate is refused (and retried).
    with monkeypatch.context() as env:
        env.delenv("SSL_CERT_FILE")
        untrusted = make_writer(server.url, spool_dir=tmp_path / "c")
        untrusted.submit(interval_points(2, 5))
        assert untrusted.flush(0.5) is False
    c = untrusted.counters()
    assert c["write_errors_conn"] >= 1 and c["points_written"] == 0 and c["spool_files"] == 1
    assert count(server) == 10


def test_unusable_spool_directory_is_one_clear_error(make_writer, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolUnusable) as info:
        make_writer("http://127.0.0.1:1", spool_dir=blocker / "spool")
    assert str(info.value) == f"spool directory {str(blocker / 'spool')!r}: Not a directory"


def test_a_flush_during_a_long_backoff_tries_again_before_its_deadline(
        influxdb: InfluxServer, make_writer):
    """SIGTERM while the sender sleeps in a 20-40 s backoff: the flush wakes it, and the
    server that came back meanwhile gets everything within the flush's deadline."""
    influxdb.query(f"CREATE DATABASE {DB}")
    influxdb.stop()
    writer = make_writer(influxdb.url, retry_initial=40, retry_max=60)
    writer.submit(interval_points(0, 50))
    wait_for(lambda: writer.counters()["retries"] >= 1)
    assert "refused" in writer.last_error.lower() or writer.last_error
    influxdb.start()
    started = time.monotonic()
    assert writer.close(timeout=5) is True
    took = time.monotonic() - started
    print(f"\nflush during a 20-40 s backoff delivered in {took:.2f} s")
    assert count(influxdb) == 50
    assert writer.counters()["spool_files"] == 0 and writer.last_error == ""


def test_points_refused_at_a_series_limit_are_folded_so_flows_still_add_up(make_writer):
    """InfluxDB's max-series-per-database (enforced by 1.6's inmem index) refuses the new
    talkers of an interval: the writer finds exactly which, adds their counts to the
    interval's accepted `other` row, and counts them; Σ flow = iface stays exact."""
    binary = find_influxd()
    assert binary, "influxd not found (Debian package influxdb)"
    server = InfluxServer(binary, data={"index-version": '"inmem"',
                                        "max-series-per-database": "30"})
    try:
        server.start()
        server.query(f"CREATE DATABASE {DB}")
        writer = make_writer(server.url)
        base = {"site": "s", "box": "b", "iface": "eth0", "dir": "ingress"}

        def interval(n: int, talkers: int) -> tuple[list[Point], int]:
            ts = T0 + n * 10_000_000_000
            rows = [Point("flow", {**base, "proto": "tcp", "src": "other", "dst": "other",
                                   "service": "tcp/443"},
                          {"packets": 1, "bytes": 100, "flows": 1, "tcp_flags": 0}, ts)]
            rows += [Point("flow", {**base, "proto": "tcp", "src": f"203.0.{n}.{i}",
                                    "dst": "198.18.0.1",
                                    "service": "tcp/443"},
                           {"packets": 2, "bytes": 1000 + i, "flows": 1, "tcp_flags": 0},
                           ts) for i in range(talkers)]
            total = sum(int(p.fields["bytes"]) for p in rows)
            return [*rows, Point("iface", base, {"packets": 0, "bytes": total}, ts)], total

        first, _ = interval(0, 3)          # 5 series: other row, 3 talkers, iface
        writer.submit(first)
        assert writer.flush(10)
        second, total = interval(1, 60)    # 60 new talkers: only 25 more series fit
        writer.submit(second)
        assert writer.flush(30)
        c = writer.counters()
        assert c["partial_writes"] == 1 and c["write_errors_4xx"] == 1
        assert c["points_folded"] == 35 and c["points_rejected"] == 0
        assert c["points_written"] == len(first) + len(second) - 35
        ts = T0 + 10_000_000_000
        [flows] = server.rows(f'SELECT SUM(bytes) FROM flow WHERE time = {ts}', db=DB)
        [iface] = server.rows(f'SELECT SUM(bytes) FROM iface WHERE time = {ts}', db=DB)
        assert flows["sum"] == iface["sum"] == total
        [other] = server.rows(f"SELECT bytes FROM flow WHERE time = {ts} AND src = 'other'",
                              db=DB)
        assert other["bytes"] > 100        # it carries the refused talkers' bytes now
    finally:
        server.stop()
        server.cleanup()
