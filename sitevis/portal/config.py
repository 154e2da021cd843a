"""The portal's configuration: one YAML file (SITEVIS_PORTAL_CONFIG), read once.

Everything a site sets lives there (written by the portal role); secrets are files the
config names (secret_key_file, password_file), never values in it or in the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENV = "SITEVIS_PORTAL_CONFIG"
DEFAULT_PATH = Path("/etc/sitevis-portal/portal.yml")  # where the portal role writes it


class ConfigError(Exception):
    """A config a user can fix: one line naming the file and the key."""


@dataclass(frozen=True)
class Database:
    engine: str = "sqlite"            # sqlite | postgresql
    name: str = ""                    # sqlite: file (default <state_dir>/portal.sqlite3)
    host: str = ""
    port: int = 5432
    user: str = ""
    password_file: str = ""


@dataclass(frozen=True)
class InfluxSettings:
    url: str = "http://127.0.0.1:8086"
    database: str = "sitevis"
    username: str | None = None       # the READ user every query uses
    password_file: str = ""
    writer_username: str | None = None   # WRITE: the rollout annotations (else username)
    writer_password_file: str = ""
    timeout_seconds: float = 10.0     # a request's statement; the passes computed ahead
                                      # take their own (traffic/ahead.py PASS_TIMEOUT_S)


@dataclass(frozen=True)
class HealthSettings:
    """Thresholds of the health rules (sitevis.portal.health) and its webhooks' retries."""

    interval_seconds: int = 10        # the collectors' interval; the evaluator's default
    silent_intervals: int = 3         # no self-metrics for longer than this many: silent
    window_intervals: int = 3         # counters are summed over this many intervals
    min_coverage: float = 0.99        # iface packets / kernel packets over the window
    max_overflow_events: int = 0      # more in the window: an issue (as the four below)
    max_ringbuf_lost: int = 0
    max_write_errors: int = 0         # write_errors + points_rejected + points_dropped
    max_filters_restored: int = 0
    max_spool_growth_bytes: int = 0   # spool_bytes last minus first in the window
    resolve_after: int = 3            # healthy evaluations in a row that resolve an issue
    webhook_attempts: int = 6
    webhook_backoff_seconds: float = 10.0   # before the 2nd attempt, doubling after
    webhook_timeout_seconds: float = 5.0
    webhook_keep_days: int = 30       # ended deliveries (and their attempts) kept so long


def _check_health(health: HealthSettings, path: Path) -> None:
    """Every value a number of its field's type, counts >= 1 where 0 makes no sense."""
    positive = {"interval_seconds", "silent_intervals", "window_intervals", "resolve_after",
                "webhook_attempts", "webhook_timeout_seconds", "webhook_keep_days"}
    for name, spec in HealthSettings.__dataclass_fields__.items():
        value = getattr(health, name)
        kinds = (int, float) if spec.type == "float" else (int,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ConfigError(f"{path}: health.{name} must be a number, not {value!r}")
        if value < (1 if name in positive else 0):
            raise ConfigError(f"{path}: health.{name} must be at least "
                              f"{1 if name in positive else 0}, not {value!r}")
    if health.min_coverage > 1:
        raise ConfigError(f"{path}: health.min_coverage must be between 0 and 1")


@dataclass(frozen=True)
class PortalConfig:
    path: Path
    secret_key_file: str
    state_dir: Path
    database: Database = field(default_factory=Database)
    influxdb: InfluxSettings = field(default_factory=InfluxSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    https: bool = False               # secure cookies, HSTS; behind a TLS proxy
    debug: bool = False
    bind: str = "127.0.0.1:8000"
    workers: int = 2
    login_failures: int = 5           # failed logins per user or address before a lock
    login_lock_seconds: int = 300
    traffic_rate: str = "120/min"     # traffic queries per user
    raw_retention_days: int = 30      # when the selector cannot tell raw's length
    grafana_url: str = ""             # the site's Grafana; the pages link its dashboards
    # The health loop computes the top lists and per-box series of the preset ranges
    # ahead of requests, a range's at most this often (sitevis/portal/traffic/ahead.py;
    # a day's every 5 min), and refreshes the boxes this often; 0: at request time only.
    overview_refresh_seconds: int = 30

    def read_secret(self, path: str, what: str) -> str:
        try:
            value = Path(path).read_text().strip()
        except OSError as err:
            raise ConfigError(f"{self.path}: {what} {path}: {err.strerror}") from None
        if not value:
            raise ConfigError(f"{self.path}: {what} {path} is empty")
        return value


def _section(data: dict[str, Any], key: str, cls: Any, path: Path) -> Any:
    value = data.pop(key, None) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {key} must be a mapping")
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"{path}: {key}.{unknown[0]} is not a setting "
                          f"(known: {', '.join(sorted(known))})")
    return cls(**value)


def load(path: Path | None = None) -> PortalConfig:
    """The config file of $SITEVIS_PORTAL_CONFIG (default /etc/sitevis-portal/portal.yml)."""
    path = path or Path(os.environ.get(ENV) or DEFAULT_PATH)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ConfigError(f"portal config {path}: {err.strerror} (set {ENV})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"portal config {path}: not YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"portal config {path}: must be a mapping")
    database = _section(data, "database", Database, path)
    influxdb = _section(data, "influxdb", InfluxSettings, path)
    health = _section(data, "health", HealthSettings, path)
    _check_health(health, path)
    timeout = influxdb.timeout_seconds
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError(f"{path}: influxdb.timeout_seconds must be a number of seconds "
                          "above 0")
    if "secret_key_file" not in data:
        raise ConfigError(f"{path}: secret_key_file is required (a file holding the key)")
    if "allowed_hosts" in data:
        data["allowed_hosts"] = tuple(data["allowed_hosts"])
    data["state_dir"] = Path(data.get("state_dir") or "/var/lib/sitevis-portal")
    known = set(PortalConfig.__dataclass_fields__) - {"path", "database", "influxdb",
                                                      "health"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]} is not a setting")
    if database.engine not in ("sqlite", "postgresql"):
        raise ConfigError(f"{path}: database.engine must be sqlite or postgresql")
    refresh = data.get("overview_refresh_seconds", 30)
    if not isinstance(refresh, int) or isinstance(refresh, bool) or refresh < 0:
        raise ConfigError(f"{path}: overview_refresh_seconds must be a whole number of "
                          "seconds, 0 or more")
    return PortalConfig(path=path, database=database, influxdb=influxdb, health=health,
                        **data)
