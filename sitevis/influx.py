"""A small InfluxDB 1.x /query client (InfluxQL over HTTP, Basic auth) for the controller."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from sitevis.query import Query


class InfluxError(Exception):
    """Something a user can fix (address, credentials, database): one line, no traceback."""


@dataclass(frozen=True)
class Series:
    tags: dict[str, str]
    columns: list[str]
    values: list[list]


@dataclass(frozen=True)
class Influx:
    url: str
    database: str
    user: str | None = None
    password: str | None = None
    timeout: float = 10.0

    def query(self, q: Query) -> list[Series]:
        """Every series of one built statement (sitevis.query); times as epoch ms."""
        fields = {"db": self.database, "q": q.text, "epoch": "ms"}
        if q.params:
            fields["params"] = json.dumps(q.params)
        params = urllib.parse.urlencode(fields)
        req = urllib.request.Request(f"{self.url.rstrip('/')}/query?{params}")
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace").strip()[:200]
            raise InfluxError(f"InfluxDB at {self.url} answered {err.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise InfluxError(f"cannot reach InfluxDB at {self.url}: {reason}") from None
        except ValueError:
            raise InfluxError(f"{self.url} did not answer like InfluxDB (not JSON)") from None
        out: list[Series] = []
        for result in body.get("results", []):
            if "error" in result:
                raise InfluxError(f"InfluxDB at {self.url}: {result['error']}")
            out.extend(Series(s.get("tags", {}), s["columns"], s["values"])
                       for s in result.get("series", []))
        return out
