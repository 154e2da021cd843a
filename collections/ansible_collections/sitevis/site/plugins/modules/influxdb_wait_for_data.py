#!/usr/bin/python
"""Wait until data is queryable in InfluxDB (v1 API)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: influxdb_wait_for_data
short_description: Wait until a box's data is queryable in InfluxDB
description:
  - Polls InfluxDB's v1 C(/query) endpoint with InfluxQL until a point of O(measurement)
    newer than O(within) seconds, matching O(tags), has a value for O(field).
  - Fails after O(timeout) seconds, saying what was looked for and what the newest point was.
  - Never changes anything.
version_added: "0.1.0"
options:
  url:
    description: InfluxDB base URL.
    type: str
    required: true
  database:
    description: Database to query.
    type: str
    required: true
  username:
    description: User for Basic auth (a READ user is enough).
    type: str
  password:
    description: Password of O(username).
    type: str
  measurement:
    description: Measurement to look in.
    type: str
    default: sitevis_collector
  field:
    description: Field that must have a value.
    type: str
    default: flows_exported
  tags:
    description: Tag values the point must have.
    type: dict
    default: {}
  within:
    description: Only points newer than this many seconds count.
    type: int
    default: 60
  timeout:
    description: Seconds to keep polling before failing.
    type: int
    default: 90
  interval:
    description: Seconds between polls.
    type: float
    default: 2
  validate_certs:
    description: Check TLS certificates of https URLs.
    type: bool
    default: true
author:
  - sitevis developers
"""

EXAMPLES = r"""
- name: Wait for box1's collector to report
  sitevis.site.influxdb_wait_for_data:
    url: http://127.0.0.1:8086
    database: sitevis
    username: grafana
    password: "{{ influxdb_grafana_password }}"
    tags:
      box: box1
"""

RETURN = r"""
found:
  description: Whether matching data was found in time.
  type: bool
  returned: always
last_seen:
  description: Time of the newest matching point (RFC 3339), or null.
  type: str
  returned: always
age:
  description: Seconds between the newest matching point and now, or null.
  type: float
  returned: always
polls:
  description: Number of queries made.
  type: int
  returned: always
"""

import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule


def quote_ident(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value):
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def build_query(measurement, field, tags, within=None):
    conditions = [f"{quote_ident(k)} = {quote_string(v)}" for k, v in sorted(tags.items())]
    if within is not None:
        conditions.append(f"time > now() - {int(within)}s")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT LAST({quote_ident(field)}) FROM {quote_ident(measurement)}{where}"


def run_query(params, query):
    url = params["url"].rstrip("/") + "/query?" + urllib.parse.urlencode(
        {"db": params["database"], "q": query, "epoch": "ms"})
    request = urllib.request.Request(url)
    if params["username"]:
        token = f"{params['username']}:{params['password'] or ''}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    context = None
    if url.startswith("https:") and not params["validate_certs"]:
        context = ssl._create_unverified_context()
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        body = json.loads(response.read())
    for result in body.get("results", []):
        if "error" in result:
            raise ValueError(result["error"])
        for series in result.get("series", []):
            for row in series.get("values", []):
                if row[1] is not None:
                    return row[0]  # epoch milliseconds
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "database": {"type": "str", "required": True},
            "username": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "measurement": {"type": "str", "default": "sitevis_collector"},
            "field": {"type": "str", "default": "flows_exported"},
            "tags": {"type": "dict", "default": {}},
            "within": {"type": "int", "default": 60},
            "timeout": {"type": "int", "default": 90},
            "interval": {"type": "float", "default": 2},
            "validate_certs": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    recent = build_query(p["measurement"], p["field"], p["tags"], p["within"])
    deadline = time.monotonic() + p["timeout"]
    polls = 0
    last_error = None
    while True:
        polls += 1
        try:
            found_ms = run_query(p, recent)
            last_error = None
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace").strip()
            if err.code in (401, 403):
                module.fail_json(msg=f"InfluxDB at {p['url']} refused the query ({err.code}): "
                                     f"{detail}", found=False, last_seen=None, age=None,
                                 polls=polls)
            found_ms, last_error = None, f"HTTP {err.code}: {detail}"
        except (urllib.error.URLError, OSError, ValueError) as err:
            found_ms, last_error = None, str(getattr(err, "reason", err))
        if found_ms is not None:
            age = time.time() - found_ms / 1000
            module.exit_json(changed=False, found=True, age=round(age, 3), polls=polls,
                             last_seen=_rfc3339(found_ms))
        if time.monotonic() >= deadline:
            break
        time.sleep(p["interval"])
    newest = None
    if last_error is None:
        try:
            newest = run_query(p, build_query(p["measurement"], p["field"], p["tags"]))
        except (urllib.error.URLError, OSError, ValueError):
            newest = None
    what = f"{p['measurement']}.{p['field']}" + "".join(
        f" {k}={v}" for k, v in sorted(p["tags"].items()))
    if last_error is not None:
        reason = f"InfluxDB at {p['url']} did not answer: {last_error}"
    elif newest is None:
        reason = f"no {what} point at all in {p['database']}"
    else:
        reason = f"newest {what} point is from {_rfc3339(newest)}, older than {p['within']}s"
    module.fail_json(msg=f"no data within {p['timeout']}s: {reason}", found=False, polls=polls,
                     last_seen=_rfc3339(newest) if newest else None,
                     age=round(time.time() - newest / 1000, 3) if newest else None)


def _rfc3339(epoch_ms):
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).isoformat()


if __name__ == "__main__":
    main()
