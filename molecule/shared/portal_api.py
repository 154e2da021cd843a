"""Shared by the scenarios' testinfra suites: one call of the portal's REST API, made
inside the host that runs the portal (it listens on that host's loopback)."""

from __future__ import annotations

import json
import shlex

PORTAL = "http://127.0.0.1:8000"
CALL = r"""
import json, sys, urllib.error, urllib.request
method, url, token = sys.argv[1:4]
body = sys.stdin.read().encode() or None
req = urllib.request.Request(url, data=body, method=method)
req.add_header("Content-Type", "application/json")
if token:
    req.add_header("Authorization", "Token " + token)
try:
    with urllib.request.urlopen(req, timeout=30) as answer:
        text = answer.read()
        print(json.dumps({"status": answer.status, "body": json.loads(text) if text else None}))
except urllib.error.HTTPError as err:
    print(json.dumps({"status": err.code, "body": err.read().decode()}))
"""


def call(host, path: str, token: str = "", method: str = "GET",
         body: dict | None = None) -> dict:
    """{"status", "body"} of one API call: the JSON body given on stdin, the answer's
    body parsed (an error's as text)."""
    command = " ".join(shlex.quote(a) for a in ("python3", "-c", CALL, method,
                                                 f"{PORTAL}{path}", token))
    data = shlex.quote(json.dumps(body)) if body is not None else "''"
    return json.loads(host.check_output(f"printf '%s' {data} | {command}"))
