"""What a refused tcx call tells the operator: one line naming the cause and the fix."""

from __future__ import annotations

import errno

import pytest
from sitevis_collector.errors import (
    InterfaceGoneError,
    KernelError,
    NoPrivilegesError,
    UnsupportedError,
)
from sitevis_collector.hooks.tcx import _error


@pytest.mark.parametrize(("code", "kind", "words"), [
    (errno.EPERM, NoPrivilegesError, "needs CAP_NET_ADMIN and CAP_BPF"),
    (errno.ENODEV, InterfaceGoneError, "vanished"),
    (errno.EINVAL, UnsupportedError, "tcx needs Linux >= 6.6; set tc_attach: clsact"),
    (errno.ENOSPC, KernelError, "No space left on device"),
])
def test_errno_becomes_a_one_line_kernel_error(code: int, kind: type, words: str) -> None:
    err = _error(code, 7, "linking the ingress program")
    assert type(err) is kind
    assert words in str(err) and "ifindex 7" in str(err) and "\n" not in str(err)
