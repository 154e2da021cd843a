"""Live per-host progress of a playbook run and the closing summary table (rich)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from sitevis.runner import HostState, RunResult

STATUS_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red",
                "unreachable": "bold magenta"}


def host_table(hosts: dict[str, HostState], title: str, final: bool = False) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("host")
    table.add_column("result" if final else "current task")
    for name in ("ok", "changed", "failed", "skipped"):
        table.add_column(name, justify="right")
    for host in sorted(hosts.values(), key=lambda h: h.name):
        status = host.status
        label = f"[{STATUS_STYLE[status]}]{status}[/]" if final else host.task
        table.add_row(host.name, label, str(host.ok), str(host.changed), str(host.failed),
                      str(host.skipped))
    return table


class Progress:
    """Redraws a per-host table on a terminal; prints one line per task start elsewhere."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.live: Live | None = None
        self._last_task: dict[str, str] = {}
        self._started = time.monotonic()

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self.live = Live(host_table({}, self.title), console=self.console,
                             refresh_per_second=8, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.__exit__(None, None, None)

    def update(self, hosts: dict[str, HostState], kind: str) -> None:
        if self.live:
            elapsed = time.monotonic() - self._started
            self.live.update(host_table(hosts, f"{self.title} — {elapsed:.0f} s"))
            return
        for host in hosts.values():
            if host.task and self._last_task.get(host.name) != host.task:
                self._last_task[host.name] = host.task
                self.console.print(f"[dim]{host.name}[/]: {host.task}", highlight=False)


def print_summary(console: Console, result: RunResult, seconds: float) -> None:
    console.print(host_table(result.hosts, f"{result.playbook} in {seconds:.0f} s", final=True))
    for host in sorted(result.hosts.values(), key=lambda h: h.name):
        for message in host.messages:
            console.print(f"[red]{host.name}[/]: {message}", highlight=False)
    console.print(f"artifacts: {result.artifact_dir}", highlight=False)
