"""The portal's own points (rollout annotations, top lists computed ahead) into InfluxDB,
as the config's influxdb.writer_username (WRITE on the database; the portal reads as a READ
user), else as the READ user. Best effort: a refused write is one log line and False."""

from __future__ import annotations

import base64
import logging
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings

log = logging.getLogger("sitevis.portal")


def write(lines: str, what: str) -> bool:
    """POST `lines` (line protocol, ns) to /write; `what` names them in the log line."""
    cfg = settings.SITEVIS_INFLUX
    query = urllib.parse.urlencode({"db": cfg.database, "precision": "ns"})
    req = urllib.request.Request(f"{cfg.url.rstrip('/')}/write?{query}",
                                 data=lines.encode(), method="POST")
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
        log.warning("%s not written to InfluxDB at %s: %s", what, cfg.url,
                    getattr(err, "reason", err))
        return False
