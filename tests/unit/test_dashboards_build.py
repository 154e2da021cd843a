"""Dashboards as code: generated JSON committed, typed round trip, schema, datasource,
variables, and the provisioning files the grafana role writes."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import jinja2
import jsonschema
import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import build, common, influxql
from sitevis import toplist
from tests.harness import grafana as g

REPO = Path(__file__).parents[2]
# Grafana's dashboard JSON schema is reference material, not part of this repository:
# the team's reference folder (shared/) lies beside the checkout for developers and CI;
# elsewhere point SITEVIS_GRAFANA_SCHEMA at a copy, or the schema test skips and says so.
SCHEMA = Path(os.environ.get(
    "SITEVIS_GRAFANA_SCHEMA",
    REPO.resolve().parent / "shared" / "reference" / "grafana-dashboard.jsonschema.json"))
GRAFANA_ROLE = REPO / "roles" / "grafana"
GRAFANA_DEFAULTS = yaml.safe_load((GRAFANA_ROLE / "defaults/main.yml").read_text())
BOARDS = sorted(build.OUT_DIR.glob("*.json"))
MACROS = {"timeFilter", "__interval", "__interval_ms"}
# Grafana fills these in query variables too (templateSrv / scenes macros).
VARIABLE_MACROS = {"__from", "__to"}
# Names Grafana's InfluxDB datasource fills in series aliases, not template variables.
ALIAS_PATTERNS = re.compile(r"\$(tag_\w+|col)\b")


def test_committed_json_is_what_the_code_generates():
    assert build.stale() == [], "run: python -m dashboards.build"


def test_stale_json_is_detected(tmp_path: Path):
    build.write(tmp_path)
    assert build.stale(tmp_path) == []
    victim = tmp_path / BOARDS[0].name
    victim.write_text(victim.read_text().replace("sitevis", "sitevis2", 1))
    (tmp_path / "leftover.json").write_text("{}")
    assert build.stale(tmp_path) == sorted([victim.name, "leftover.json"])
    assert build.main(["--check"]) == 0


def test_four_dashboards_with_stable_uids():
    uids = [json.loads(p.read_text())["uid"] for p in BOARDS]
    assert uids == [p.stem for p in BOARDS]
    assert sorted(uids) == sorted(build.DASHBOARDS) and len(uids) == 4


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_sdk_round_trip_is_lossless_and_typed(path: Path):
    influxql.register()
    original = json.loads(path.read_text())
    board = Dashboard.from_json(copy.deepcopy(original))
    again = json.loads(json.dumps(board, cls=JSONEncoder))
    assert again == original
    queries = [t for p in board.panels or [] for t in (getattr(p, "targets", None) or [])]
    assert queries and all(isinstance(q, influxql.InfluxQuery) for q in queries)


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_json_validates_against_the_dashboard_schema(path: Path):
    if not SCHEMA.is_file():
        pytest.skip(f"Grafana's dashboard schema not found at {SCHEMA} (set "
                    "SITEVIS_GRAFANA_SCHEMA to a copy of grafana-dashboard.jsonschema.json)")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    board = json.loads(path.read_text())
    jsonschema.validate(board, schema)
    # The schema does constrain: a panel with a malformed grid position is rejected.
    broken = copy.deepcopy(board)
    broken["panels"][1]["gridPos"] = {"h": "tall"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def _datasources(node: object) -> list[dict]:
    found: list[dict] = []
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            found.append(node["datasource"])
        for value in node.values():
            found.extend(_datasources(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_datasources(value))
    return found


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_every_datasource_is_the_provisioned_one(path: Path):
    board = json.loads(path.read_text())
    refs = _datasources(board)
    provisioned = {"type": "influxdb", "uid": GRAFANA_DEFAULTS["grafana_datasource_uid"]}
    assert refs and all(ref == provisioned for ref in refs)
    # Every query and every query variable names it: none falls back to a default.
    for panel, target in g.targets(board):
        assert panel["datasource"] == provisioned and target["datasource"] == provisioned
    for var in g.variables(board):
        if var["type"] == "query":
            assert var["datasource"] == provisioned


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_queries_use_only_defined_variables_and_grafana_time_macros(path: Path):
    board = json.loads(path.read_text())
    defined = {v["name"] for v in g.variables(board)}
    texts = [t["query"] for _, t in g.targets(board)]
    texts += [p["interval"] for p in g.panels(board) if "interval" in p]
    for text in texts:
        used = {m[1] or m[3] or m[4] for m in g.VARIABLE.finditer(text)}
        assert used <= defined | MACROS, text
    for var in g.variables(board):
        if var["type"] == "query":
            used = {m[1] or m[3] or m[4] for m in g.VARIABLE.finditer(var["query"])}
            assert used <= defined | VARIABLE_MACROS, var["query"]
    for _, target in g.targets(board):
        q = target["query"]
        if "GROUP BY time(" in q:
            assert "GROUP BY time($__interval)" in q and "$timeFilter" in q, q
        # Bounded in time: by the picker, by $silent, or to the newest passes of the
        # portal's top lists (sitevis/toplist.py), which ignore the picker by design.
        ahead = (f'FROM "{toplist.MEASUREMENT}"' in q
                 and f"time > now() - {toplist.FRESH}" in q)
        assert "$timeFilter" in q or "now() - $silent" in q or ahead, q
        assert not ALIAS_PATTERNS.search(q), q


def test_rp_variables_read_the_selector_the_influxdb_role_writes():
    role_vars = yaml.safe_load((REPO / "roles/influxdb/vars/main.yml").read_text())
    policy = role_vars["_influxdb_meta_retention_policy"]
    measurement = role_vars["_influxdb_rp_selector_measurement"]
    assert f'"{policy}"."{measurement}"' == common.RP_SELECTOR
    point = role_vars["_influxdb_rp_selector"][0]
    assert {"rp", "interval", "max_range_ms"} <= set(point)
    for board in (json.loads(p.read_text()) for p in BOARDS):
        variables = {v["name"]: v for v in g.variables(board)}
        readers = [(p, t) for p, t in g.targets(board) if '"$rp".' in t["query"]]
        if not readers:
            assert not {"rp", "rp_interval"} & set(variables)
            continue
        for name, field in (("rp", "rp"), ("rp_interval", "interval")):
            var = variables[name]
            assert var["type"] == "query" and var["query"] == common.rp_query(field)
            assert var["refresh"] == 2  # on time range change
            assert not var["multi"] and not var["includeAll"] and not var["allowCustomValue"]
            assert var["skipUrlSync"]
        assert variables["rp_interval"]["hide"] == 2
        # A panel grouping $rp by time groups by its resolution at least; no other
        # panel depends on the selector.
        for panel, target in readers:
            if "GROUP BY time(" in target["query"]:
                assert panel.get("interval") == "$rp_interval", panel["title"]
        assert all('"$rp".' in t["query"] for p, t in g.targets(board)
                   if p.get("interval") == "$rp_interval")


def _render(template: str) -> dict:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(GRAFANA_ROLE / "templates"),
                             undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    text = env.get_template(template).render(
        **GRAFANA_DEFAULTS, ansible_managed="Ansible managed",
        _grafana_secrets={"influxdb": "s3cret"})
    return yaml.safe_load(text)


def test_datasource_provisioning_has_what_grafana_requires():
    doc = _render("datasource.yml.j2")
    assert doc["apiVersion"] == 1
    [ds] = doc["datasources"]
    for key in ("name", "type", "access", "url", "uid", "user", "jsonData",
                "secureJsonData"):
        assert ds.get(key) not in (None, ""), key
    assert ds["type"] == "influxdb" and ds["access"] in ("proxy", "direct")
    assert ds["uid"] == common.DATASOURCE_UID
    assert re.match(r"^https?://", ds["url"])
    assert ds["jsonData"]["dbName"] and ds["jsonData"]["httpMode"] in ("GET", "POST")
    assert ds["jsonData"].get("version", "InfluxQL") == "InfluxQL"
    assert ds["secureJsonData"]["password"] == "s3cret"
    assert "password" not in ds  # only in secureJsonData, which Grafana encrypts


def test_dashboard_provider_points_at_the_copied_json():
    doc = _render("dashboards.yml.j2")
    assert doc["apiVersion"] == 1
    [provider] = doc["providers"]
    for key in ("name", "type", "options"):
        assert provider.get(key), key
    assert provider["type"] == "file"
    assert provider["options"]["path"] == GRAFANA_DEFAULTS["grafana_dashboards_dir"]
    assert GRAFANA_DEFAULTS["grafana_dashboards_source"].endswith("/dashboards/json")
