"""The root runner's parts that need no root: a request as the runner parses it, the
rollouts.yml keys, and the worker's hand-over when no runner answers (real files)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

pytest.importorskip("django", reason="the portal extra is not installed")
pytest.importorskip("ansible_runner", reason="ansible-runner is not installed")

from sitevis.portal.config import ConfigError
from sitevis.portal.rollouts import conf, handoff
from sitevis.portal.rollouts.request import PLAYBOOKS, RequestError, RunRequest
from sitevis.portal.rollouts.spool import Spool

GOOD = RunRequest(rollout=7, token="ab" * 16, playbook="site", inventory="lab-1",
                  limit="boxes:!box3", tags="collector,influxdb", check=True)


def test_a_request_goes_over_as_json_and_comes_back_the_same():
    assert RunRequest.parse(json.dumps(asdict(GOOD)).encode()) == GOOD


def test_the_runner_takes_each_playbook_the_portal_launches():
    # models.Rollout.Playbook (not importable without settings) names the same three.
    assert PLAYBOOKS == ("site", "verify", "remove")
    for playbook in PLAYBOOKS:
        data = {**asdict(GOOD), "playbook": playbook}
        assert RunRequest.parse(json.dumps(data).encode()).playbook == playbook


@pytest.mark.parametrize(("change", "error"), [
    ({"rollout": 0}, "rollout must be a positive integer"),
    ({"rollout": True}, "rollout must be a positive integer"),
    ({"rollout": "7"}, "rollout must be a positive integer"),
    ({"check": "yes"}, "check must be true or false"),
    ({"playbook": "site.yml"}, "playbook must be one of site, verify, remove"),
    ({"token": "x" * 32}, "token must be 32 hexadecimal digits"),
    ({"inventory": "../lab"}, "inventory must be a name"),
    ({"inventory": ""}, "inventory must be a name"),
    ({"limit": "-e@x"}, "limit must be hosts, groups and patterns only"),
    ({"limit": "box1\n"}, "limit must be hosts, groups and patterns only"),
    ({"limit": "a" * 256}, "limit must be hosts, groups and patterns only"),
    ({"tags": "a b"}, "tags must be comma-separated tag names only"),
    ({"tags": 5}, "tags must be comma-separated tag names only"),
    ({"extra": 1}, "a request has exactly the keys"),
])
def test_each_bad_field_is_refused_with_its_name(change: dict, error: str):
    data = {**asdict(GOOD), **change}
    with pytest.raises(RequestError, match=error):
        RunRequest.parse(json.dumps(data).encode())


def test_not_json_or_too_large_is_refused():
    with pytest.raises(RequestError, match="not a JSON request"):
        RunRequest.parse(b"{")
    with pytest.raises(RequestError, match="at most 4096 bytes"):
        RunRequest.parse(b" " * 5000)


def test_rollouts_yml_names_a_root_runner_spool_by_an_absolute_path(tmp_path: Path):
    (tmp_path / "playbooks").mkdir()
    path = tmp_path / "rollouts.yml"
    path.write_text(f"project: {tmp_path}\ninventories: {{lab: inv}}\n"
                    "root_runner: /var/lib/sitevis-portal-runner\n")
    assert conf.load(path).root_runner == Path("/var/lib/sitevis-portal-runner")
    path.write_text(f"project: {tmp_path}\ninventories: {{lab: inv}}\n")
    assert conf.load(path).root_runner is None
    # A project the portal's sandbox cannot see (under /root): root's runner checks it.
    hidden = tmp_path / "hidden"
    path.write_text(f"project: {hidden}\ninventories: {{lab: inv}}\nroot_runner: /spool\n")
    assert conf.load(path).project == hidden
    path.write_text(f"project: {hidden}\ninventories: {{lab: inv}}\n")
    with pytest.raises(ConfigError, match="has no playbooks/ directory"):
        conf.load(path)
    for bad, error in (("root_runner: spool", "root_runner must be an absolute path"),
                       ("runner: /x", "only the keys inventories, project, root_runner"),
                       ("inventories: {'a b': inv}", "inventory name 'a b' is not")):
        path.write_text(f"project: {tmp_path}\ninventories: {{lab: inv}}\n{bad}\n"
                        if "inventories" not in bad else f"project: {tmp_path}\n{bad}\n")
        with pytest.raises(ConfigError, match=error):
            conf.load(path)


def handed_over(spool: Spool, *args, **kwargs) -> handoff.Handed | None:
    """The worker's hand-over of GOOD, followed to its end (work._run does the same)."""
    handoff.hand_over(spool, GOOD)
    return handoff.follow(spool, GOOD, *args, **kwargs)


def spool_at(root: Path) -> Spool:
    spool = Spool(root)
    spool.requests.mkdir()
    return spool


def test_with_no_runner_the_hand_over_fails_clearly_and_is_taken_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(handoff, "PICKUP_S", 0.5)
    spool = spool_at(tmp_path)
    events: list[dict] = []
    with pytest.raises(handoff.HandoffError,
                       match=r"did not take the rollout within 0\.5 s: is sitevis-portal-runner"):
        handed_over(spool, events.append, cancel=lambda: False)
    assert list(spool.requests.iterdir()) == [] and events == []


def test_a_cancel_before_the_runner_takes_it_withdraws_the_request(tmp_path: Path):
    spool = spool_at(tmp_path)
    assert handed_over(spool, lambda event: None, cancel=lambda: True) is None
    assert list(spool.requests.iterdir()) == []


def test_a_stopping_worker_leaves_a_waiting_request_for_the_next_one(tmp_path: Path):
    """Detached while the runner has yet to take it: the request stays, resumable."""
    spool = spool_at(tmp_path)
    with pytest.raises(handoff.Detached, match="left waiting for the root runner"):
        handed_over(spool, lambda event: None, cancel=lambda: False,
                            detach=lambda: True)
    assert spool.request(GOOD.rollout).exists()
    assert handoff.resumable(spool, GOOD)


def test_a_run_is_resumable_only_by_its_own_token(tmp_path: Path):
    spool = spool_at(tmp_path)
    assert not handoff.resumable(spool, GOOD)   # nothing in the spool: lost
    run = spool.run(GOOD.rollout)
    run.mkdir(parents=True)
    (run / "runner.json").write_text(json.dumps({"token": "cd" * 16, "pid": 1}))
    assert not handoff.resumable(spool, GOOD)   # an older rollout's run of the same id
    (run / "runner.json").write_text(json.dumps({"token": GOOD.token, "pid": 1}))
    assert handoff.resumable(spool, GOOD)


def test_a_follower_takes_every_event_again_after_a_detach(tmp_path: Path):
    """What a later worker does: the run's events from the first, then its result."""
    spool = spool_at(tmp_path)
    run = spool.run(GOOD.rollout)
    run.mkdir(parents=True)
    (run / "runner.json").write_text(json.dumps({"token": GOOD.token, "pid": 1}))
    (run / "events.jsonl").write_text("".join(
        json.dumps({"counter": n, "event": "verbose"}) + "\n" for n in (1, 2, 3)))
    first: list[dict] = []
    with pytest.raises(handoff.Detached, match=r"left to the root runner \(pid 1\)"):
        handoff.follow(spool, GOOD, first.append, cancel=lambda: False, detach=lambda: True)
    result = {"playbook": "site.yml", "inventory": "lab", "limit": None, "status":
              "successful", "rc": 0, "hosts": {}, "artifact_dir": str(run),
              "no_host_matched": False}
    (run / "result.json").write_text(json.dumps(
        {"token": GOOD.token, "result": result, "commit": "abc", "stopped": False}))
    again: list[dict] = []
    handed = handoff.follow(spool, GOOD, again.append, cancel=lambda: False)
    assert handed is not None and (handed.result.status, handed.commit) == ("successful", "abc")
    assert [e["counter"] for e in first] == [1, 2, 3] == [e["counter"] for e in again]
