"""A private sitevis portal: its own config, SQLite (or a given PostgreSQL) database and
gunicorn on a free loopback port, started with `sitevis portal` as the role runs it."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.harness.influx import free_port, stop_process
from tests.harness.tools import tool

PASSWORD = "correct horse battery staple"


class PortalServer:
    def __init__(self, influx_url: str = "http://127.0.0.1:9", database: dict | None = None,
                 **settings: Any) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sitevis-portal-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.root / "secret_key").write_text(secrets.token_urlsafe(50))
        (self.root / "password").write_text(PASSWORD)
        self.config = self.root / "portal.yml"
        self.config.write_text(yaml.safe_dump({
            "secret_key_file": str(self.root / "secret_key"),
            "state_dir": str(self.root / "state"),
            "bind": f"127.0.0.1:{self.port}",
            "workers": 2,
            "influxdb": {"url": influx_url, "database": "sitevis"},
            **({"database": database} if database else {}),
            **settings,
        }))
        (self.root / "state").mkdir()
        self.log = self.root / "portal.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SITEVIS_PORTAL_CONFIG": str(self.config)}

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([tool("sitevis"), "portal", *args], env=self.env,
                              capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise RuntimeError(f"sitevis portal {' '.join(args)}: {proc.stderr}{proc.stdout}")
        return proc

    def user(self, name: str, group: str, *sites: str) -> None:
        site_args = [arg for site in sites for arg in ("--site", site)]
        self.manage("createuser", name, "--group", group, "--password-file",
                    str(self.root / "password"), *site_args)

    def start(self, timeout: float = 60) -> None:
        self.manage("migrate", "--no-input")
        self.manage("collectstatic", "--no-input")
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen([tool("sitevis"), "portal", "serve"], env=self.env,
                                          stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"portal exited early:\n{self.log.read_text()}")
            try:
                if requests.get(f"{self.url}/api/schema/", timeout=15).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"portal did not answer in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, 15)
            self._proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def login(self, user: str, password: str = PASSWORD) -> requests.Session:
        """A browser-like session, signed in through the login form (CSRF and all)."""
        session = requests.Session()
        session.get(f"{self.url}/login/")
        answer = session.post(f"{self.url}/login/", data={
            "username": user, "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            headers={"Referer": f"{self.url}/login/"}, allow_redirects=False)
        if answer.status_code != 302:
            raise RuntimeError(f"login of {user} answered {answer.status_code}")
        return session

    def token(self, user: str, write: bool = False, **extra: Any) -> str:
        answer = requests.post(f"{self.url}/api/users/tokens/provision/", json={
            "username": user, "password": PASSWORD, "write_enabled": write, **extra},
            timeout=10)
        if answer.status_code != 201:
            raise RuntimeError(f"token for {user}: {answer.status_code} {answer.text}")
        return answer.json()["token"]

    def api(self, token: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        return session
