"""Putting the program on interfaces: the ways to attach it (clsact filters, tcx links,
XDP over rtnetlink) share Hooks (base); interfaces follows the interfaces that match
the patterns; instances tells this collector's programs from a peer's; cleanup removes
what a gone collector left."""

from __future__ import annotations

from sitevis_collector.errors import KernelError
from sitevis_collector.hooks.base import HookSet
from sitevis_collector.kernel.program import FlowProgram

# How the tc hook is attached (config tc_attach): auto = tcx where the kernel has it.
TC_ATTACH_MODES = ("auto", "tcx", "clsact")


def hooks_for(program: FlowProgram, netns: str | None = None,
              tc_attach: str = "auto") -> HookSet:
    """XdpHooks, or for the tc hook TcxHooks (links, kernel >= 6.6) / TcHooks (clsact
    filters): tc_attach "auto" takes tcx wherever the kernel has it."""
    if program.hook == "xdp":
        from sitevis_collector.hooks.xdp import XdpHooks

        return XdpHooks(program, netns)
    from sitevis_collector.hooks.clsact import TcHooks
    from sitevis_collector.hooks.tcx import TcxHooks, tcx_available

    if tc_attach not in TC_ATTACH_MODES:
        raise KernelError(f"tc_attach must be one of {', '.join(TC_ATTACH_MODES)}")
    if tc_attach == "tcx" or (tc_attach == "auto" and tcx_available(netns)):
        return TcxHooks(program, netns)
    return TcHooks(program, netns)
