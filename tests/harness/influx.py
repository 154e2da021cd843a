"""A private InfluxDB 1.x server (Debian's influxd) on a free loopback port."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

INFLUXD_CANDIDATES = ("influxd", "/usr/bin/influxd")


def find_influxd() -> str | None:
    for name in INFLUXD_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within timeout seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class InfluxServer:
    """One influxd process with its own config, data dir and ports; restartable."""

    def __init__(self, binary: str, auth: bool = False,
                 data: dict[str, str] | None = None) -> None:
        """data: more [data] settings, as TOML values (e.g. {"index-version": '"tsi1"'})."""
        self.binary = binary
        self.auth = auth
        self.data = data or {}
        self.root = Path(tempfile.mkdtemp(prefix="sitevis-influx-"))
        self.http_port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config = self.root / "influxdb.conf"
        self.log = self.root / "influxd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        self.config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.root}/meta"
[data]
  dir = "{self.root}/data"
  wal-dir = "{self.root}/wal"
  query-log-enabled = false
{"".join(f"  {key} = {value}{chr(10)}" for key, value in self.data.items())}[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.http_port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
  pprof-enabled = false
"""
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        if self.running:
            return
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "-config", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"influxd exited early; log:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as resp:
                    if resp.status == 204:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(
            f"influxd did not answer /ping in {timeout}s; log:\n{self.log.read_text()}"
        )

    def stop(self) -> None:
        if self._proc is None:
            return
        stop_process(self._proc, 10)
        self._proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _request(
        self, path: str, params: dict[str, str], data: bytes | None = None,
        auth: tuple[str, str] | None = None, timeout: float = 10,
    ) -> tuple[int, bytes]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        req = urllib.request.Request(url, data=data, method="POST")
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def query(self, q: str, db: str | None = None,
              auth: tuple[str, str] | None = None, timeout: float = 10) -> dict:
        """Run InfluxQL; returns the decoded JSON body (raises on a non-2xx answer)."""
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        status, body = self._request("/query", params, auth=auth, timeout=timeout)
        if status // 100 != 2:
            raise RuntimeError(f"query {q!r} answered {status}: {body.decode(errors='replace')}")
        return json.loads(body)

    def write(self, db: str, lines: str, precision: str = "ns",
              auth: tuple[str, str] | None = None, rp: str | None = None) -> int:
        """Write line protocol (into `rp`, else the default policy); the HTTP status."""
        params = {"db": db, "precision": precision} | ({"rp": rp} if rp else {})
        status, _ = self._request("/write", params, lines.encode(), auth=auth)
        return status

    def rows(self, q: str, db: str, auth: tuple[str, str] | None = None) -> list[dict]:
        """Rows of every series of a query as dicts (column -> value, tags included)."""
        out: list[dict] = []
        for result in self.query(q, db=db, auth=auth).get("results", []):
            if "error" in result:
                raise RuntimeError(f"query {q!r} failed: {result['error']}")
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series["values"]:
                    out.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return out


# The influxdb role's flow rollups with its defaults (interval, source, EVERY, FOR);
# test_influxdb_schema checks rollup_queries() against what the role creates.
ROLLUPS = (("5m", "flow", "1m", "15m"), ("1h", "flow_5m", "5m", "3h"))


def rollup_queries(db: str) -> dict[str, str]:
    """Continuous query name -> its statement, as SHOW CONTINUOUS QUERIES prints it."""
    return {f"sitevis_rollup_flow_{interval}": (
        f"CREATE CONTINUOUS QUERY sitevis_rollup_flow_{interval} ON {db} RESAMPLE EVERY "
        f"{every} FOR {window} BEGIN SELECT sum(packets) AS packets, sum(bytes) AS bytes, "
        f"sum(flows) AS flows INTO {db}.raw.flow_{interval} FROM {db}.raw.{source} "
        f"GROUP BY time({interval}), * END") for interval, source, every, window in ROLLUPS}


def backfill_rollups(server: InfluxServer, db: str, start_s: int, end_s: int,
                     auth: tuple[str, str] | None = None) -> None:
    """What the rollup queries would have summed had they run while [start, end) was
    written (points written with past times): their bodies over that range, the 5-minute
    rollup first, in windows of whole buckets (at least 10 minutes) so none runs long."""
    first, last = start_s - start_s % 3600, end_s - end_s % 3600 + 3600
    for text, (interval, *_) in zip(rollup_queries(db).values(), ROLLUPS, strict=True):
        body = text[text.index("BEGIN ") + 6:text.rindex(" END")]
        step = max(600, int(interval[:-1]) * {"m": 60, "h": 3600}[interval[-1]])
        for t in range(first, last, step):
            window = f"WHERE time >= {t}s AND time < {t + step}s GROUP BY"
            server.query(body.replace("GROUP BY", window, 1), db=db, auth=auth, timeout=600)
    record_rollups(server, db, first * 1000, auth=auth)


def record_rollups(server: InfluxServer, db: str, since_ms: int,
                   auth: tuple[str, str] | None = None) -> None:
    """The role's record of its rollups (sitevis_meta.sitevis_rollup): whole since then."""
    lines = "\n".join(f'sitevis_rollup,measurement=flow_{interval} rp="raw",since_ms={since_ms}i 0'
                      for interval, *_ in ROLLUPS)
    assert server.write(db, lines, precision="ms", auth=auth, rp="sitevis_meta") == 204


def create_role_layout(server: InfluxServer, db: str, *, rollups: bool = False) -> None:
    """The database as the influxdb role lays it out, without running the role: raw
    (default, 30 d), long, sitevis_meta, and the dashboards' retention-policy selector
    (roles/influxdb/vars/main.yml: raw serves ranges up to 2 days that start within its
    30 days, long everything else); with `rollups`, the flow rollups' queries."""
    for q in (f"CREATE DATABASE {db}",
              f"CREATE RETENTION POLICY raw ON {db} DURATION 30d REPLICATION 1 DEFAULT",
              f"CREATE RETENTION POLICY long ON {db} DURATION 400d REPLICATION 1",
              f"CREATE RETENTION POLICY sitevis_meta ON {db} DURATION INF REPLICATION 1",
              *(rollup_queries(db).values() if rollups else ())):
        server.query(q)
    if rollups:
        record_rollups(server, db, time.time_ns() // 10**6)
    assert server.write(db, "sitevis_rp rp=\"raw\",interval=\"10s\",max_range_ms=172800000i "
                        "2592000\nsitevis_rp rp=\"long\",interval=\"5m\","
                        "max_range_ms=9223372036854775807i 7258118400",
                        precision="s", rp="sitevis_meta") == 204
