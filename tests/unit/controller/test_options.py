"""The `sitevis` command line: bad values are one line and exit 2, before any request."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from sitevis.cli import build_parser, main
from sitevis.retention import AUTO


@pytest.fixture
def listener() -> Iterator[str]:
    """A loopback port that would see any connection the CLI made (none is expected)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.settimeout(0.2)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(TimeoutError):
            sock.accept()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["top", "--since", "1h' OR 1=1"], "argument --since: \"1h' OR 1=1\" is not a duration"),
    (["top", "--since", "0"], "argument --since: '0' is not a duration"),
    (["top", "--rp", 'raw"; DROP DATABASE sitevis'], "argument --rp:"),
    (["top", "--limit", "0"], "argument --limit: limit must be between 1"),
    (["top", "--limit", "5; DROP"], "argument --limit: '5; DROP' is not a whole number"),
    (["top", "--dir", "both' OR 1=1"], "argument --dir: invalid choice"),
    (["top", "--by", "src"], "argument --by: invalid choice"),
    (["top", "--site", "a\nb"], "argument --site: site 'a\\nb' must be one printable line"),
    (["status", "--window", "5m OR 1=1"], "argument --window:"),
    (["report", "--until", "now"], "argument --until: 'now' is not a duration"),
    (["report", "--since", "1h", "--until", "2h"], "--since must reach further back"),
    (["status", "--password-file", "/dev/null"], "--password and --password-file need --user"),
    (["top", "--password", "x"], "--password and --password-file need --user"),
])
def test_bad_values_are_one_line_exit_2_and_nothing_is_sent(
        capsys: pytest.CaptureFixture[str], listener: str, argv: list[str], message: str):
    code, err = run(capsys, *argv, "--url", listener)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"sitevis {argv[0]}: ")
    assert message in err


def test_values_are_parsed_into_checked_types():
    args = build_parser().parse_args(["report", "--since", "1h30m", "--until", "0"])
    assert (args.since.seconds, args.until.seconds, args.rp) == (5400, 0, AUTO)
    top = build_parser().parse_args(["top", "--rp", "long", "--limit", "5", "--site", "o'x"])
    assert (top.rp, top.limit, top.site, top.since.text) == ("long", 5, "o'x", "1h")
    assert build_parser().parse_args(["status"]).window.text == "5m"


@pytest.mark.parametrize("command", ["rollout", "verify", "status"])
@pytest.mark.parametrize("option", [["-l", "box1,box2"], ["--limit", "box1,box2"],
                                    ["--limit=box1,box2"]])
def test_limit_is_accepted_in_every_spelling(command: str, option: list[str]):
    args = build_parser().parse_args([command, "-i", "inventory/example", *option])
    assert (args.limit, args.inventory) == ("box1,box2", "inventory/example")


def test_a_missing_inventory_is_one_line_before_anything_runs(
        capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch: pytest.MonkeyPatch):
    runner = tmp_path / "runner"
    monkeypatch.setenv("SITEVIS_RUNNER_DIR", str(runner))
    for command in ("rollout", "verify", "status", "top", "report"):
        code, err = run(capsys, command, "-i", str(tmp_path / "typo"))
        assert code == 2
        assert err == (f"sitevis {command}: inventory {tmp_path / 'typo'}: "
                       "no such file or directory\n")
    assert not runner.exists()
