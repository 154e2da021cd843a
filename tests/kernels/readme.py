"""The README's table of tested kernels, generated from matrix.py:
python3 -m tests.kernels.readme rewrites the marked block of README.md; with --check it
only says whether the block is current (test_readme.py runs that in the pytest stage)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.kernels.matrix import EXPECTED_ONLY, MATRIX, TCX_SINCE, Kernel, expected_hook

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = ("<!-- kernel-matrix: generated from tests/kernels/matrix.py by "
         "`python3 -m tests.kernels.readme`; edit it there -->")
END = "<!-- /kernel-matrix -->"
SINCE = ".".join(map(str, TCX_SINCE))


def _row(kernel: Kernel) -> str:
    if not kernel.vm:
        return (f"| {kernel.distribution} | the one it runs | tcx from {SINCE}, else clsact "
                "| none: no VM |")
    hook = expected_hook(kernel.series + "0")
    if hook == "clsact":
        hook += " (`check`: no tcx in this kernel)"
    return (f"| {kernel.distribution} | {kernel.series}x from `{kernel.source}` | {hook} "
            f"| `{kernel.suite}`: its Python, BCC, iproute2 |")


def block() -> str:
    rows = "\n".join(_row(k) for k in MATRIX)
    return (f"{BEGIN}\n"
            "| tested on | kernel | tc hook chosen by `tc_attach: auto` | VM root file system |\n"
            f"|---|---|---|---|\n{rows}\n\n"
            f"Expected to work, not tested here: {', '.join(EXPECTED_ONLY)}\n"
            "(no package source for them on the test machines).\n"
            f"{END}")


def rewrite(text: str) -> str:
    """text with its kernel-matrix block replaced by block()."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no block from {BEGIN!r} to {END!r}")
    return text[:start] + block() + text[end + len(END):]


def main(argv: list[str]) -> int:
    current = README.read_text()
    wanted = rewrite(current)
    if argv == ["--check"]:
        if wanted != current:
            print("README.md's kernel matrix is stale: python3 -m tests.kernels.readme",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
