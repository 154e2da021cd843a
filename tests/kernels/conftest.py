"""The kernel matrix (./run test kernels): every kernel of matrix.MATRIX runs guest.py,
VMs side by side as far as the machine has cores (at most 2; SITEVIS_VM_JOBS), and
test_matrix.py asserts on what each reported. The VM test is collected only when
SITEVIS_KERNEL_MATRIX=1 (the kernels stage sets it), so the pytest stage boots nothing;
SITEVIS_KERNELS=debian12,host picks kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.kernels import vm
from tests.kernels.images import manifest, recipe_hash
from tests.kernels.matrix import MATRIX, Kernel

collect_ignore = [] if os.environ.get("SITEVIS_KERNEL_MATRIX") == "1" else ["test_matrix.py"]

_TIMES: dict[str, str] = {}


def selected() -> list[Kernel]:
    wanted = [n for n in os.environ.get("SITEVIS_KERNELS", "").split(",") if n]
    unknown = set(wanted) - {k.name for k in MATRIX}
    if unknown:
        raise pytest.UsageError(f"SITEVIS_KERNELS names no kernel of the matrix: {unknown}")
    return [k for k in MATRIX if not wanted or k.name in wanted]


def _jobs() -> int:
    return int(os.environ.get("SITEVIS_VM_JOBS") or min(2, os.cpu_count() or 1))


def _timed(kernel: Kernel, boots: dict[str, str] | None, wheel: Path) -> dict[str, Any]:
    try:
        result = vm.run(kernel, boots, wheel)
    except Exception as err:
        _TIMES[kernel.name] = f"{kernel.name:13} no result: {str(err).splitlines()[0]}"
        raise
    _TIMES[kernel.name] = (f"{kernel.name:13} {result['release']:24} "
                           f"{result['wall_seconds']:6.1f} s (guest {result['seconds']} s)")
    return result


@pytest.fixture(scope="session")
def matrix_results(tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[dict[str, Future[dict[str, Any]]]]:
    """kernel name -> the future result of its run; every run starts at once."""
    if os.geteuid() != 0:
        pytest.skip("the kernel matrix needs root (VM images, network namespaces, BPF)")
    kernels = selected()
    built = manifest()
    if built is None and any(k.vm for k in kernels):
        pytest.fail(f"no VM images for recipe {recipe_hash()}: run scripts/build-vm-images "
                    "(./run test kernels does)")
    out = tmp_path_factory.mktemp("wheel")
    # The wheel the collector role installs, built as the role builds it.
    built_wheel = subprocess.run(
        [sys.executable, str(vm.REPO / "roles/collector/files/build_wheel.py"),
         str(vm.REPO / "collector"), str(out)], capture_output=True, text=True, check=True)
    wheel = Path(json.loads(built_wheel.stdout)["wheel"])
    # The VMs first (the slowest), this machine's own kernel last.
    order = sorted(kernels, key=lambda k: not k.vm)
    with ThreadPoolExecutor(max_workers=_jobs()) as pool:
        yield {k.name: pool.submit(_timed, k, built["kernels"][k.name] if k.vm and built
                                   else None, wheel) for k in order}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _TIMES:
        terminalreporter.section("kernel matrix: wall time per kernel")
        for kernel in MATRIX:
            if kernel.name in _TIMES:
                terminalreporter.line(_TIMES[kernel.name])
