"""A collector stand-in that attaches our program in a netns and waits to be killed.

args: netns ifindex hook(tc|xdp) [tc_attach(auto|tcx|clsact)] [registered]
With "registered" it registers as a running collector does (instances.py).
"""

from __future__ import annotations

import sys
import time

from sitevis_collector.hooks import hooks_for, instances
from sitevis_collector.kernel.program import FlowProgram, KernelSettings


def main() -> None:
    netns, ifindex, hook = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tc_attach = sys.argv[4] if len(sys.argv) > 4 else "auto"
    program = FlowProgram(KernelSettings(hook=hook, table_size=64))
    if sys.argv[5:] == ["registered"]:
        # The registration names this process's netns (the machine's), not the test's
        # where it attaches: a pattern of "*" would claim every interface of the machine
        # and so refuse the collectors of the tests running beside this one (./run test
        # pytest runs two at once). Ownership is by program id, which needs no pattern.
        instances.register("kernel_child", ("none-in-this-netns",), (), program.prog_ids)
    hooks = hooks_for(program, netns, tc_attach)
    hooks.attach(ifindex, program.directions)
    print("attached", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
