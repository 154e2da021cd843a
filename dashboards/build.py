"""Regenerate dashboards/json/*.json: `python -m dashboards.build` (--check: only compare).

Output is deterministic (sorted keys, two-space indent, trailing newline), so the
committed JSON changes only when a dashboard does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import box_detail, collector_health, flow_explorer, influxql, site_overview

OUT_DIR = Path(__file__).parent / "json"
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    site_overview.UID: site_overview.build,
    box_detail.UID: box_detail.build,
    flow_explorer.UID: flow_explorer.build,
    collector_health.UID: collector_health.build,
}


def to_json(board: object) -> str:
    return json.dumps(board, cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    influxql.register()
    return {f"{uid}.json": to_json(build().build()) for uid, build in DASHBOARDS.items()}


def stale(out_dir: Path = OUT_DIR) -> list[str]:
    """Files that differ from what the code generates, or should not be there."""
    wanted = render()
    present = {p.name for p in out_dir.glob("*.json")} if out_dir.is_dir() else set()
    differ = [name for name, text in wanted.items()
              if name not in present or (out_dir / name).read_text() != text]
    return sorted(differ + sorted(present - set(wanted)))


def write(out_dir: Path = OUT_DIR) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = render()
    for name, text in wanted.items():
        (out_dir / name).write_text(text)
    for extra in out_dir.glob("*.json"):
        if extra.name not in wanted:
            extra.unlink()
    return sorted(wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if dashboards/json/ differs from the code")
    args = parser.parse_args(argv)
    if args.check:
        differ = stale()
        if differ:
            print("stale dashboards (run python -m dashboards.build): " + ", ".join(differ),
                  file=sys.stderr)
            return 1
        return 0
    for name in write():
        print(OUT_DIR / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
