"""The `rollout` measurement (docs/schema.md): one point when a rollout starts and one when
it ends, for the dashboards' and the portal's annotations. Written as the config's
influxdb.writer_username (sitevis/portal/influxwrite.py). Best effort: a refused write is
one log line, never a failed rollout."""

from __future__ import annotations

import time

from sitevis.lineproto import string, tag
from sitevis.portal import influxwrite
from sitevis.portal.rollouts.models import Rollout


def line(rollout: Rollout, outcome: str) -> str:
    tags = f"site={tag(rollout.inventory)},playbook={rollout.playbook},outcome={outcome}"
    duration = rollout.duration or 0.0
    fields = (f"rollout_id={rollout.pk}i,rc={rollout.rc if rollout.rc is not None else -1}i,"
              f"duration_s={float(duration)},check={str(rollout.check_mode).lower()},"
              f"launched_by={string(rollout.launched_by_name)},"
              f"source={string(rollout.source)}")
    return f"rollout,{tags} {fields} {time.time_ns()}"


def write(rollout: Rollout, outcome: str) -> bool:
    return influxwrite.write(line(rollout, outcome), f"rollout #{rollout.pk}: annotation")
