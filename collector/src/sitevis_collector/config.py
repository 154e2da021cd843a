"""Load and validate the collector's YAML config into typed, immutable dataclasses.

Every user mistake becomes one ConfigError whose message is a single line:
``<file>: <key.path>: <what is wrong>``.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sitevis_collector.hooks import TC_ATTACH_MODES
from sitevis_collector.records import EGRESS, INGRESS

DEFAULT_INCLUDE = ("*",)
# Loopback never leaves the box; everything else (physical, bond, bridge, veth, VLAN)
# is watched. Narrow it per site: a bridge and its ports see the same frames.
DEFAULT_EXCLUDE = ("lo",)
DEFAULT_SPOOL_DIR = "/var/lib/sitevis-collector/spool"
MIB = 1024 * 1024
# InfluxDB 1.x refuses bodies over 25,000,000 bytes (uncompressed); stay far below.
MAX_BATCH_BYTES = 20_000_000


class ConfigError(Exception):
    """A config problem, rendered as one line naming the file and the key path."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + problem)


@dataclass(frozen=True, slots=True)
class InterfacesConfig:
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE


@dataclass(frozen=True, slots=True)
class TLSConfig:
    ca_file: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    url: str
    database: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)   # never in a repr or log
    retention_policy: str | None = None
    timeout: float = 10.0
    tls: TLSConfig = TLSConfig()
    batch_max_bytes: int = 4 * MIB     # uncompressed body of one request
    queue_max_bytes: int = 64 * MIB    # compressed batches held in memory
    retry_initial: float = 1.0         # first backoff, seconds
    retry_max: float = 60.0            # backoff ceiling, seconds


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    dir: str = DEFAULT_SPOOL_DIR
    max_bytes: int = 256 * MIB


# Names an address class may not take: they mean something else in src/dst.
RESERVED_CLASSES = ("other", "overflow")


@dataclass(frozen=True, slots=True)
class SeriesConfig:
    """The box's series budget (docs/schema.md "Series budget"): how many detailed talker
    rows it keeps, how fast newcomers get in, and how the rest is folded."""

    talkers: int = 200                  # detailed (address-carrying) rows kept at once
    admissions_per_hour: int = 60       # newcomers let into that set per hour
    services: int = 100                 # service names kept in folded rows
    service_admissions_per_hour: int = 10
    hysteresis: float = 2.0             # a newcomer must outscore the weakest by this factor
    half_life: float = 600.0            # seconds for a talker's score to halve
    # A newcomer must carry this share of the box's (decayed) traffic: a heavy hitter.
    min_share: float = 0.001
    # Address classes of folded rows: (name, network), first match wins; else "other".
    prefixes: tuple[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network], ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    site: str
    box: str
    interfaces: InterfacesConfig
    interval: float
    influxdb: InfluxConfig
    spool: SpoolConfig
    directions: tuple[str, ...]
    hook: str
    tc_attach: str
    flow_table_size: int
    sample_rate: int
    sample_rate_limit: int
    top_n: int
    service_port_bound: int
    bpf_dir: str | None
    series: SeriesConfig = SeriesConfig()


# --- schema walking -------------------------------------------------------------------

class _Section:
    """A mapping being validated, with its key path for error messages."""

    def __init__(self, source: str, path: str, data: Any) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(source, path or "(top level)",
                              f"must be a mapping, got {_kind(data)}")
        self.source = source
        self.path = path
        self.data: dict[Any, Any] = data

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), problem)

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def get(self, name: str) -> Any:
        return self.data.get(name)

    def sub(self, name: str) -> _Section:
        return _Section(self.source, self.key(name), self.data.get(name))

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        """Checked before any value, so a misspelt key is named as such."""
        for key in self.data:
            if not isinstance(key, str):
                raise ConfigError(self.source, self.path or "(top level)",
                                  f"keys must be strings, got {key!r}")
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise self.error(key, f"unknown key{suffix}")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _str(sec: _Section, name: str, default: str | None = None, *,
         required: bool = False) -> str | None:
    value = sec.get(name)
    if value is None:
        if required:
            raise sec.error(name, "is required")
        return default
    if not isinstance(value, str):
        raise sec.error(name, f"must be a string, got {_kind(value)}")
    if not value.strip():
        raise sec.error(name, "must not be empty")
    return value


def _label(sec: _Section, name: str, default: str | None = None, *,
           required: bool = False) -> str | None:
    """A string that becomes a tag value: one printable line."""
    value = _str(sec, name, default, required=required)
    if value is not None and any(not ch.isprintable() for ch in value):
        raise sec.error(name, "must not contain control characters such as newlines")
    return value


def _int(sec: _Section, name: str, default: int, *, minimum: int,
         maximum: int | None = None) -> int:
    value = sec.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise sec.error(name, f"must be an integer, got {_kind(value)}")
    if value < minimum:
        raise sec.error(name, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise sec.error(name, f"must be <= {maximum}, got {value}")
    return value


def _seconds(sec: _Section, name: str, default: float) -> float:
    value = sec.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise sec.error(name, f"must be a number of seconds, got {_kind(value)}")
    if not math.isfinite(value) or value <= 0:
        raise sec.error(name, f"must be a number of seconds > 0, got {value}")
    return float(value)


def _bool(sec: _Section, name: str, default: bool) -> bool:
    value = sec.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise sec.error(name, f"must be true or false, got {_kind(value)}")
    return value


def _str_list(sec: _Section, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = sec.get(name)
    if value is None:
        return default
    if not isinstance(value, list):
        raise sec.error(name, f"must be a list of strings, got {_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise sec.error(f"{name}[{i}]", f"must be a non-empty string, got {_kind(item)}")
    return tuple(value)


def _existing_file(sec: _Section, name: str, base: Path) -> Path | None:
    value = _str(sec, name)
    if value is None:
        return None
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise sec.error(name, f"file {str(path)!r} does not exist")
    return path


# --- sections ---------------------------------------------------------------------------

def _interfaces(sec: _Section) -> InterfacesConfig:
    sec.check_keys(("include", "exclude"))
    return InterfacesConfig(include=_str_list(sec, "include", DEFAULT_INCLUDE),
                            exclude=_str_list(sec, "exclude", DEFAULT_EXCLUDE))


def _tls(sec: _Section, base: Path) -> TLSConfig:
    sec.check_keys(("ca_file", "insecure_skip_verify"))
    ca = _existing_file(sec, "ca_file", base)
    return TLSConfig(ca_file=str(ca) if ca else None,
                     insecure_skip_verify=_bool(sec, "insecure_skip_verify", False))


def _url(sec: _Section) -> str:
    url = _str(sec, "url", required=True)
    assert url is not None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise sec.error("url", f"must be an http:// or https:// URL with a host, got {url!r}")
    if parts.username or parts.password:
        # Credentials in a URL end up in logs; they belong in username/password.
        raise sec.error("url", "must not contain credentials; use username and password")
    if parts.query or parts.fragment:
        raise sec.error("url", "must not have a query string or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise sec.error("url", f"has an invalid port: {url!r}") from None
    return url.rstrip("/")


def _password(sec: _Section, base: Path) -> str | None:
    if sec.has("password") and sec.has("password_file"):
        raise sec.error("password_file", "password and password_file are mutually exclusive")
    value = sec.get("password")
    if value is not None:
        if not isinstance(value, str):
            raise sec.error("password", f"must be a string, got {_kind(value)}")
        return value
    path = _existing_file(sec, "password_file", base)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise sec.error("password_file", f"cannot read {str(path)!r}: {err}") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise sec.error("password_file", f"{str(path)!r} is empty")
    return secret


_INFLUX_KEYS = ("url", "database", "username", "password", "password_file",
                "retention_policy", "timeout", "tls", "batch_max_bytes", "queue_max_bytes",
                "retry_initial", "retry_max")


def _influxdb(sec: _Section, base: Path) -> InfluxConfig:
    sec.check_keys(_INFLUX_KEYS)
    url = _url(sec)
    database = _str(sec, "database", required=True)
    assert database is not None
    username = _str(sec, "username")
    password = _password(sec, base)
    if password is not None and username is None:
        raise sec.error("username", "is required when a password is given")
    batch = _int(sec, "batch_max_bytes", 4 * MIB, minimum=1024, maximum=MAX_BATCH_BYTES)
    retry_initial = _seconds(sec, "retry_initial", 1.0)
    retry_max = _seconds(sec, "retry_max", 60.0)
    if retry_max < retry_initial:
        raise sec.error("retry_max", f"must be >= retry_initial ({retry_initial}), "
                                     f"got {retry_max}")
    return InfluxConfig(
        url=url, database=database, username=username, password=password,
        retention_policy=_str(sec, "retention_policy"),
        timeout=_seconds(sec, "timeout", 10.0),
        tls=_tls(sec.sub("tls"), base),
        batch_max_bytes=batch,
        queue_max_bytes=_int(sec, "queue_max_bytes", 64 * MIB, minimum=batch),
        retry_initial=retry_initial, retry_max=retry_max,
    )


def _spool(sec: _Section) -> SpoolConfig:
    sec.check_keys(("dir", "max_bytes"))
    directory = _str(sec, "dir", DEFAULT_SPOOL_DIR)
    assert directory is not None
    if not Path(directory).is_absolute():
        raise sec.error("dir", f"must be an absolute path, got {directory!r}")
    return SpoolConfig(dir=directory,
                       max_bytes=_int(sec, "max_bytes", 256 * MIB, minimum=4096))


def _directions(sec: _Section, hook: str) -> tuple[str, ...]:
    allowed = (INGRESS, EGRESS)
    if not sec.has("directions"):
        # XDP sees received frames only.
        return (INGRESS,) if hook == "xdp" else allowed
    value = _str_list(sec, "directions", allowed)
    if not value:
        raise sec.error("directions", "must name at least one direction")
    for i, item in enumerate(value):
        if item not in allowed:
            raise sec.error(f"directions[{i}]", f"must be 'ingress' or 'egress', got {item!r}")
    if len(set(value)) != len(value):
        raise sec.error("directions", "lists a direction twice")
    if hook == "xdp" and EGRESS in value:
        raise sec.error("directions", "hook 'xdp' sees ingress only; remove 'egress' "
                                      "or use hook 'tc'")
    return tuple(d for d in allowed if d in value)


def _number(sec: _Section, name: str, default: float, *, minimum: float) -> float:
    value = sec.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise sec.error(name, f"must be a number, got {_kind(value)}")
    if not math.isfinite(value) or value < minimum:
        raise sec.error(name, f"must be a number >= {minimum}, got {value}")
    return float(value)


def _share(sec: _Section, name: str, default: float) -> float:
    value = _number(sec, name, default, minimum=0.0)
    if value >= 1:
        raise sec.error(name, f"must be a share below 1 (0.001 = 0.1 %), got {value}")
    return value


_CLASS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def _prefixes(sec: _Section) -> tuple[tuple[str, ipaddress.IPv4Network
                                          | ipaddress.IPv6Network], ...]:
    """`prefixes: {name: [cidr, ...]}`: the address classes folded rows keep."""
    value = sec.get("prefixes")
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise sec.error("prefixes", f"must be a mapping of name to a list of networks, "
                                    f"got {_kind(value)}")
    out = []
    for name, networks in value.items():
        where = f"prefixes.{name}"
        if not isinstance(name, str) or not _CLASS_NAME.fullmatch(name) \
                or name in RESERVED_CLASSES:
            raise sec.error(where, "must be a name of letters, digits, '_', '.', '-' "
                                   f"starting with a letter, not {list(RESERVED_CLASSES)}")
        if not isinstance(networks, list) or not networks:
            raise sec.error(where, f"must be a non-empty list of networks, got {_kind(networks)}")
        for i, text in enumerate(networks):
            try:
                out.append((name, ipaddress.ip_network(str(text), strict=False)))
            except ValueError:
                raise sec.error(f"{where}[{i}]",
                                f"must be a network like 198.18.0.0/15, got {text!r}") from None
    return tuple(out)


def _series(sec: _Section) -> SeriesConfig:
    sec.check_keys(("talkers", "admissions_per_hour", "services",
                    "service_admissions_per_hour", "hysteresis", "half_life", "min_share",
                    "prefixes"))
    return SeriesConfig(
        talkers=_int(sec, "talkers", 200, minimum=0, maximum=1_000_000),
        admissions_per_hour=_int(sec, "admissions_per_hour", 60, minimum=0,
                                 maximum=1_000_000),
        services=_int(sec, "services", 100, minimum=0, maximum=100_000),
        service_admissions_per_hour=_int(sec, "service_admissions_per_hour", 10,
                                         minimum=0, maximum=100_000),
        hysteresis=_number(sec, "hysteresis", 2.0, minimum=1.0),
        half_life=_seconds(sec, "half_life", 600.0),
        min_share=_share(sec, "min_share", 0.001),
        prefixes=_prefixes(sec),
    )


_TOP_KEYS = ("site", "box", "interfaces", "interval", "influxdb", "spool", "directions",
             "hook", "flow_table_size", "sample_rate", "sample_rate_limit", "top_n",
             "service_port_bound", "bpf_dir", "tc_attach", "series")


def parse_config(data: Any, source: str = "<config>", base: Path | None = None) -> Config:
    """Validate an already-decoded YAML document; relative paths resolve against base."""
    base = base or Path.cwd()
    top = _Section(source, "", data)
    top.check_keys(_TOP_KEYS)
    site = _label(top, "site", required=True)
    box = _label(top, "box", socket.gethostname())
    hook = _str(top, "hook", "tc")
    if hook not in ("tc", "xdp"):
        raise top.error("hook", f"must be 'tc' or 'xdp', got {hook!r}")
    tc_attach = _str(top, "tc_attach", "auto")
    if tc_attach not in TC_ATTACH_MODES:
        raise top.error("tc_attach", f"must be 'auto', 'tcx' or 'clsact', got {tc_attach!r}")
    bpf_dir = _str(top, "bpf_dir")
    if bpf_dir is not None:
        bpf_path = Path(bpf_dir) if Path(bpf_dir).is_absolute() else base / bpf_dir
        if not bpf_path.is_dir():
            raise top.error("bpf_dir", f"directory {str(bpf_path)!r} does not exist")
        bpf_dir = str(bpf_path)
    if not top.has("influxdb"):
        raise top.error("influxdb", "is required")
    assert site is not None and box is not None and hook is not None
    return Config(
        source=source, site=site, box=box,
        interfaces=_interfaces(top.sub("interfaces")),
        interval=_seconds(top, "interval", 10.0),
        influxdb=_influxdb(top.sub("influxdb"), base),
        spool=_spool(top.sub("spool")),
        directions=_directions(top, hook),
        hook=hook,
        tc_attach=tc_attach or "auto",
        flow_table_size=_int(top, "flow_table_size", 65536, minimum=16, maximum=1 << 24),
        sample_rate=_int(top, "sample_rate", 1000, minimum=0),
        sample_rate_limit=_int(top, "sample_rate_limit", 100, minimum=1),
        top_n=_int(top, "top_n", 1000, minimum=1),
        service_port_bound=_int(top, "service_port_bound", 32768, minimum=1, maximum=65536),
        bpf_dir=bpf_dir,
        series=_series(top.sub("series")),
    )


_WHITESPACE = re.compile(r"\s+")


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file; raises ConfigError (one line) on any problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(source, "", f"cannot read: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(source, "", f"invalid YAML: {where}"
                                      f"{_WHITESPACE.sub(' ', problem).strip()}") from None
    if data is None:
        raise ConfigError(source, "", "is empty")
    return parse_config(data, source, base=path.parent.resolve())
