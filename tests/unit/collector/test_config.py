"""Config loading: defaults, and one exact line for every kind of mistake."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sitevis_collector.config import (
    DEFAULT_SPOOL_DIR,
    ConfigError,
    load_config,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "collector" / "config.example.yml"

MINIMAL = """\
site: lab
influxdb:
  url: http://127.0.0.1:8086
  database: sitevis
"""


def write(tmp_path: Path, text: str, name: str = "collector.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    return message.removeprefix(f"{path}: ")


def test_minimal_config_gets_documented_defaults(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.site == "lab"
    assert cfg.box == socket.gethostname()
    assert cfg.interfaces.include == ("*",)
    assert cfg.interfaces.exclude == ("lo",)
    assert cfg.interval == 10.0
    assert cfg.directions == ("ingress", "egress")
    assert cfg.hook == "tc"
    assert cfg.tc_attach == "auto"
    assert cfg.top_n == 1000
    assert cfg.service_port_bound == 32768
    assert cfg.sample_rate == 1000
    assert cfg.spool.dir == DEFAULT_SPOOL_DIR
    assert cfg.influxdb.url == "http://127.0.0.1:8086"
    assert cfg.influxdb.username is None and cfg.influxdb.password is None
    assert cfg.influxdb.batch_max_bytes < 25_000_000
    assert cfg.bpf_dir is None


def test_example_config_is_valid_and_documents_every_key(tmp_path):
    text = EXAMPLE.read_text()
    # The example points at files that exist on a box; make them exist here.
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "pw").write_text("secret\n")
    text = text.replace("/etc/sitevis/ca.pem", str(tmp_path / "ca.pem"))
    text = text.replace("/etc/sitevis/influxdb-password", str(tmp_path / "pw"))
    cfg = load_config(write(tmp_path, text))
    assert cfg.influxdb.password == "secret"
    assert cfg.influxdb.tls.ca_file == str(tmp_path / "ca.pem")
    for key in ("site:", "box:", "interfaces:", "include:", "exclude:", "interval:",
                "influxdb:", "url:", "database:", "username:", "password_file:", "password:",
                "retention_policy:", "timeout:", "tls:", "ca_file:", "insecure_skip_verify:",
                "batch_max_bytes:", "queue_max_bytes:", "retry_initial:", "retry_max:",
                "spool:", "dir:", "max_bytes:", "directions:", "hook:", "flow_table_size:",
                "sample_rate:", "sample_rate_limit:", "top_n:", "service_port_bound:",
                "bpf_dir:", "tc_attach:", "series:", "talkers:", "admissions_per_hour:",
                "services:", "service_admissions_per_hour:", "hysteresis:", "half_life:",
                "min_share:", "prefixes:"):
        assert key in text, key
    assert cfg.series.min_share == 0.001


def test_password_file_is_read_at_load_without_trailing_newline(tmp_path):
    (tmp_path / "pw").write_text("s3cr=t pass\n")
    cfg = load_config(write(tmp_path, MINIMAL + "  username: collector\n"
                                                "  password_file: pw\n"))
    assert cfg.influxdb.password == "s3cr=t pass"
    assert "s3cr" not in repr(cfg)


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "bpf").mkdir()
    (tmp_path / "ca.pem").write_text("x")
    cfg = load_config(write(tmp_path, MINIMAL + "  tls: {ca_file: ca.pem}\nbpf_dir: bpf\n"))
    assert cfg.bpf_dir == str(tmp_path / "bpf")
    assert cfg.influxdb.tls.ca_file == str(tmp_path / "ca.pem")


def test_xdp_defaults_to_ingress_only(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + "hook: xdp\n"))
    assert cfg.directions == ("ingress",)


@pytest.mark.parametrize(("extra", "expected"), [
    ("intreval: 5\n", "intreval: unknown key (did you mean 'interval'?)"),
    ("colour: blue\n", "colour: unknown key"),
    ("interval: 0\n", "interval: must be a number of seconds > 0, got 0"),
    ("interval: -1.5\n", "interval: must be a number of seconds > 0, got -1.5"),
    ("interval: soon\n", "interval: must be a number of seconds, got a string"),
    ("interval: true\n", "interval: must be a number of seconds, got a boolean"),
    ("hook: ebpf\n", "hook: must be 'tc' or 'xdp', got 'ebpf'"),
    ("tc_attach: tc\n", "tc_attach: must be 'auto', 'tcx' or 'clsact', got 'tc'"),
    ("hook: xdp\ndirections: [ingress, egress]\n",
     "directions: hook 'xdp' sees ingress only; remove 'egress' or use hook 'tc'"),
    ("directions: [ingress, sideways]\n",
     "directions[1]: must be 'ingress' or 'egress', got 'sideways'"),
    ("directions: []\n", "directions: must name at least one direction"),
    ("directions: [egress, egress]\n", "directions: lists a direction twice"),
    ("directions: ingress\n", "directions: must be a list of strings, got a string"),
    ("top_n: 0\n", "top_n: must be >= 1, got 0"),
    ("top_n: 10.5\n", "top_n: must be an integer, got a number"),
    ("sample_rate: -1\n", "sample_rate: must be >= 0, got -1"),
    ("service_port_bound: 70000\n", "service_port_bound: must be <= 65536, got 70000"),
    ("flow_table_size: 1\n", "flow_table_size: must be >= 16, got 1"),
    ("interfaces:\n  include: eth0\n",
     "interfaces.include: must be a list of strings, got a string"),
    ("interfaces:\n  exclude: [lo, 7]\n",
     "interfaces.exclude[1]: must be a non-empty string, got an integer"),
    ("interfaces:\n  exlude: [lo]\n", "interfaces.exlude: unknown key (did you mean 'exclude'?)"),
    ("interfaces: [eth0]\n", "interfaces: must be a mapping, got a list"),
    ("spool:\n  dir: spool\n", "spool.dir: must be an absolute path, got 'spool'"),
    ("spool:\n  max_bytes: 10\n", "spool.max_bytes: must be >= 4096, got 10"),
    ("box: ''\n", "box: must not be empty"),
    ("box: \"a\\nb\"\n", "box: must not contain control characters such as newlines"),
    ("bpf_dir: /nonexistent/sitevis-bpf\n",
     "bpf_dir: directory '/nonexistent/sitevis-bpf' does not exist"),
    ("series:\n  talker: 5\n", "series.talker: unknown key (did you mean 'talkers'?)"),
    ("series:\n  talkers: -1\n", "series.talkers: must be >= 0, got -1"),
    ("series:\n  hysteresis: 0.5\n", "series.hysteresis: must be a number >= 1.0, got 0.5"),
    ("series:\n  min_share: 5\n",
     "series.min_share: must be a share below 1 (0.001 = 0.1 %), got 5.0"),
    ("series:\n  min_share: -0.1\n", "series.min_share: must be a number >= 0.0, got -0.1"),
    ("series:\n  prefixes: [10.0.0.0/8]\n",
     "series.prefixes: must be a mapping of name to a list of networks, got a list"),
    ("series:\n  prefixes: {other: [10.0.0.0/8]}\n",
     "series.prefixes.other: must be a name of letters, digits, '_', '.', '-' starting "
     "with a letter, not ['other', 'overflow']"),
    ("series:\n  prefixes: {lab: [300.1.0.0/16]}\n",
     "series.prefixes.lab[0]: must be a network like 198.18.0.0/15, got '300.1.0.0/16'"),
])
def test_bad_top_level_values_name_the_key(tmp_path, extra, expected):
    assert error_of(tmp_path, MINIMAL + extra) == expected


@pytest.mark.parametrize(("influx", "expected"), [
    ("  url: ftp://x\n  database: d\n",
     "influxdb.url: must be an http:// or https:// URL with a host, got 'ftp://x'"),
    ("  url: http://u:p@h:8086\n  database: d\n",
     "influxdb.url: must not contain credentials; use username and password"),
    ("  url: http://h:99999\n  database: d\n",
     "influxdb.url: has an invalid port: 'http://h:99999'"),
    ("  database: d\n", "influxdb.url: is required"),
    ("  url: http://h\n", "influxdb.database: is required"),
    ("  url: http://h\n  database: 5\n", "influxdb.database: must be a string, got an integer"),
    ("  url: http://h\n  database: d\n  username: u\n  password: p\n  password_file: f\n",
     "influxdb.password_file: password and password_file are mutually exclusive"),
    ("  url: http://h\n  database: d\n  password: p\n",
     "influxdb.username: is required when a password is given"),
    ("  url: http://h\n  database: d\n  username: u\n  password_file: /nonexistent/pw\n",
     "influxdb.password_file: file '/nonexistent/pw' does not exist"),
    ("  url: http://h\n  database: d\n  timeout: 0\n",
     "influxdb.timeout: must be a number of seconds > 0, got 0"),
    ("  url: http://h\n  database: d\n  batch_max_bytes: 30000000\n",
     "influxdb.batch_max_bytes: must be <= 20000000, got 30000000"),
    ("  url: http://h\n  database: d\n  retry_initial: 5\n  retry_max: 1\n",
     "influxdb.retry_max: must be >= retry_initial (5.0), got 1.0"),
    ("  url: http://h\n  database: d\n  tls:\n    insecure_skip_verify: 'yes'\n",
     "influxdb.tls.insecure_skip_verify: must be true or false, got a string"),
    ("  url: http://h\n  database: d\n  tls:\n    ca_file: /nonexistent/ca.pem\n",
     "influxdb.tls.ca_file: file '/nonexistent/ca.pem' does not exist"),
    ("  url: http://h\n  database: d\n  tls:\n    cafile: x\n",
     "influxdb.tls.cafile: unknown key (did you mean 'ca_file'?)"),
    ("  url: http://h\n  database: d\n  pasword: x\n",
     "influxdb.pasword: unknown key (did you mean 'password'?)"),
])
def test_bad_influxdb_values_name_the_key(tmp_path, influx, expected):
    assert error_of(tmp_path, "site: lab\ninfluxdb:\n" + influx) == expected


def test_empty_password_file_is_an_error(tmp_path):
    (tmp_path / "pw").write_text("\n")
    message = error_of(tmp_path, MINIMAL + "  username: u\n  password_file: pw\n")
    assert message == f"influxdb.password_file: {str(tmp_path / 'pw')!r} is empty"


def test_missing_site_and_influxdb(tmp_path):
    assert error_of(tmp_path, "influxdb: {url: 'http://h', database: d}\n") == "site: is required"
    assert error_of(tmp_path, "site: lab\n") == "influxdb: is required"


def test_file_level_errors(tmp_path):
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError, match=r"nope\.yml: file does not exist$"):
        load_config(missing)
    assert error_of(tmp_path, "") == "is empty"
    assert error_of(tmp_path, "- a\n- b\n") == "(top level): must be a mapping, got a list"
    assert error_of(tmp_path, "site: [unclosed\n") == (
        "invalid YAML: line 2 column 1: expected ',' or ']', but got '<stream end>'")


def test_secret_never_appears_in_an_error(tmp_path):
    message = error_of(tmp_path, "site: lab\ninfluxdb:\n  url: http://h\n  database: d\n"
                                 "  password: hunter2\n")
    assert "hunter2" not in message
