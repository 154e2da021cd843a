"""The `rollout` measurement (docs/schema.md): one point when a rollout starts and one when
it ends, for the dashboards' and the portal's annotations. Written as the config's
influxdb.writer_username (WRITE on the database; the portal reads as a READ user), else as
the READ user. Best effort: a refused write is one log line, never a failed rollout."""

from __future__ import annotations

import base64
import logging
import time
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings

from sitevis.portal.rollouts.models import Rollout

log = logging.getLogger("sitevis.portal.rollouts")


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line(rollout: Rollout, outcome: str) -> str:
    tags = f"site={_tag(rollout.inventory)},playbook={rollout.playbook},outcome={outcome}"
    duration = rollout.duration or 0.0
    fields = (f"rollout_id={rollout.pk}i,rc={rollout.rc if rollout.rc is not None else -1}i,"
              f"duration_s={float(duration)},check={str(rollout.check_mode).lower()},"
              f"launched_by={_string(rollout.launched_by_name)},"
              f"source={_string(rollout.source)}")
    return f"rollout,{tags} {fields} {time.time_ns()}"


def write(rollout: Rollout, outcome: str) -> bool:
    cfg = settings.SITEVIS_INFLUX
    query = urllib.parse.urlencode({"db": cfg.database, "precision": "ns"})
    req = urllib.request.Request(f"{cfg.url.rstrip('/')}/write?{query}",
                                 data=line(rollout, outcome).encode(), method="POST")
    user, password_file, setting = (
        (cfg.writer_username, cfg.writer_password_file, "influxdb.writer_password_file")
        if cfg.writer_username else
        (cfg.username, cfg.password_file, "influxdb.password_file"))
    if user:
        password = (settings.CONFIG.read_secret(password_file, setting)
                    if password_file else "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10):
            return True
    except (urllib.error.URLError, OSError) as err:
        log.warning("rollout #%s: annotation not written to InfluxDB at %s: %s",
                    rollout.pk, cfg.url, getattr(err, "reason", err))
        return False
