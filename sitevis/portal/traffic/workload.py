"""The hook for the site-scale benchmark (bench/sitescale*, issue 14): the traffic
queries an operator's page makes, as (API path, parameters). A benchmark fills an
InfluxDB with its generated site, starts a portal on it (tests/harness/portal.py) and
times these calls; this module only says what to call, so the benchmark measures what
the API really serves. Not a test: no timing is asserted anywhere in tests/."""

from __future__ import annotations

RANGES = ("15m", "6h", "24h", "2d", "7d", "30d")


def standard_queries(site: str, box: str) -> list[tuple[str, dict[str, str]]]:
    calls: list[tuple[str, dict[str, str]]] = [("/api/status/", {})]
    for since in RANGES:
        for by in ("talkers", "services", "protocols", "boxes"):
            if by == "talkers" and since == "30d":
                continue   # talkers are kept as long as raw (30 d): refused by design
            calls.append(("/api/flows/top/", {"by": by, "since": since, "site": site}))
        calls.append(("/api/series/traffic/", {"since": since, "site": site, "per": "box"}))
        calls.append(("/api/series/traffic/", {"since": since, "site": site, "box": box,
                                               "per": "interface"}))
    calls.append(("/api/packets/", {"since": "15m", "site": site, "limit": "100"}))
    return calls
