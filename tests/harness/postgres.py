"""A private PostgreSQL (Debian's postgresql 15) on a free loopback port with a temporary
data directory, started like the harness starts influxd; as user postgres (it refuses
to run as root)."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness.influx import free_port

RUN_AS = "postgres"


def find_pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def unusable_reason() -> str | None:
    if find_pg_bin() is None:
        return "PostgreSQL not installed (Debian package postgresql; ./run test installs it)"
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        return f"no user {RUN_AS} to run PostgreSQL as"
    if os.geteuid() != 0:
        return "needs root to run PostgreSQL as its own user"
    return None


class PostgresServer:
    def __init__(self) -> None:
        self.bin = find_pg_bin() or Path("/nonexistent")
        self.root = Path(tempfile.mkdtemp(prefix="sitevis-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.password_file = self.root / "password"
        self.log = self.root / "postgres.log"
        user = pwd.getpwnam(RUN_AS)
        os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *cmd: str, stdin: str | None = None) -> str:
        proc = subprocess.run(["runuser", "-u", RUN_AS, "--", *cmd], input=stdin,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr}{proc.stdout}")
        return proc.stdout

    def start(self) -> None:
        pwfile = self.root / "superuser-password"
        pwfile.write_text(self.password)
        shutil.chown(pwfile, RUN_AS)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "sitevis",
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
                  "start")
        self._createdb()
        self.password_file.write_text(self.password)

    def _createdb(self) -> None:
        env = {**os.environ, "PGPASSWORD": self.password}
        deadline = time.monotonic() + 30
        while True:
            proc = subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p",
                                   str(self.port), "-U", "sitevis", "sitevis_portal"],
                                  env=env, capture_output=True, text=True)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"createdb: {proc.stderr}")
            time.sleep(0.3)

    def database(self) -> dict:
        """The portal config's `database` section for this server."""
        return {"engine": "postgresql", "name": "sitevis_portal", "host": "127.0.0.1",
                "port": self.port, "user": "sitevis", "password_file": str(self.password_file)}

    def cleanup(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", RUN_AS, "--", str(self.bin / "pg_ctl"), "-D",
                            str(self.data), "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)
