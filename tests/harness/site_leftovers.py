"""What the site's roles leave on this machine (inventory/local: box, monitor and portal),
so a host rollout test can prove that removing the site leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

from tests.harness.tools import host_processes

PATHS = [  # installed by the roles, with systemd or with init scripts
    "/opt/sitevis-collector", "/etc/sitevis", "/usr/share/sitevis-collector",
    "/var/lib/sitevis-collector", "/etc/systemd/system/sitevis-collector.service",
    "/etc/systemd/system/sitevis-collector.service.d", "/etc/init.d/sitevis-collector",
    "/var/log/sitevis-collector.log", "/run/sitevis-collector.pid",
    "/etc/init.d/sitevis-influxdb", "/run/sitevis-influxdb.pid",
    "/var/log/influxdb/influxd.log", "/var/lib/influxdb/meta", "/var/lib/influxdb/data",
    "/var/lib/influxdb/wal", "/etc/grafana", "/var/lib/grafana",
    "/opt/sitevis-portal", "/etc/sitevis-portal", "/var/lib/sitevis-portal",
    "/var/cache/sitevis-portal", "/etc/systemd/system/sitevis-portal.service",
    "/etc/init.d/sitevis-portal", "/var/log/sitevis-portal.log",
    "/etc/systemd/system/sitevis-portal-worker.service", "/etc/init.d/sitevis-portal-worker",
    "/var/log/sitevis-portal-worker.log", "/run/sitevis-portal-worker.pid",
    "/etc/systemd/system/sitevis-portal-health.service", "/etc/init.d/sitevis-portal-health",
    "/var/log/sitevis-portal-health.log", "/run/sitevis-portal-health.pid",
    "/etc/systemd/system/sitevis-portal-runner.service", "/etc/init.d/sitevis-portal-runner",
    "/var/log/sitevis-portal-runner.log", "/run/sitevis-portal-runner.pid",
    "/var/lib/sitevis-portal-runner",
]
SERVICES = ("sitevis-collector", "sitevis-influxdb", "sitevis-portal", "sitevis-portal-worker",
            "sitevis-portal-health", "sitevis-portal-runner")


def present() -> set[str]:
    return {p for p in PATHS if Path(p).exists()}


def runlevel_links() -> list[str]:
    return sorted(str(p) for name in SERVICES
                  for p in Path("/etc").glob(f"rc?.d/[SK][0-9][0-9]{name}"))


def processes() -> list[str]:
    """The site's daemons started from this machine's files (not a Molecule container's)."""
    return host_processes("sitevis-collector run -c /etc/sitevis/|"
                          "influxd.*-config /etc/influxdb/influxdb.conf|"
                          "/opt/sitevis-portal/bin/")


def left_since(before: set[str]) -> list[str]:
    """Paths and runlevel links present now that were not before the rollout."""
    return sorted(present() - before) + runlevel_links()
