"""Errors a user can cause on the kernel side: one clear line, a specific class."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sitevis_collector.errors import CompileError, KernelError, UnsupportedError
from sitevis_collector.kernel.program import FlowProgram, KernelSettings, check_kernel_version

REPO = Path(__file__).resolve().parents[3]


def test_missing_source_is_a_compile_error(tmp_path: Path):
    with pytest.raises(CompileError, match=r"sitevis\.c not found") as info:
        FlowProgram(bpf_dir=tmp_path)
    assert "\n" not in str(info.value)


def test_broken_source_is_a_one_line_compile_error(bcc_ready, tmp_path: Path):
    (tmp_path / "sitevis.c").write_text("int sitevis_ingress(struct __sk_buff *skb) { oops }\n")
    with pytest.raises(CompileError, match=r"compiling .* failed") as info:
        FlowProgram(bpf_dir=tmp_path)
    assert "\n" not in str(info.value)


def _bpf_copy(tmp_path: Path, header_edit: tuple[str, str]) -> Path:
    """The project's bpf/ in tmp_path, with one replacement in the types header."""
    shutil.copytree(REPO / "bpf", tmp_path / "bpf")
    header = tmp_path / "bpf" / "sitevis_types.h"
    text = header.read_text()
    edited = text.replace(*header_edit, 1)
    assert edited != text
    header.write_text(edited)
    return tmp_path / "bpf"


def test_a_source_of_another_version_is_refused_by_map_layout(bcc_ready, tmp_path: Path):
    """The collector reads maps with its own ctypes mirrors of the C structs: a BPF
    source whose struct grew must fail with one clear line, not decode garbage."""
    bpf_dir = _bpf_copy(tmp_path, ("struct counts {\n    u64 packets;",
                                   "struct counts {\n    u64 extra;\n    u64 packets;"))
    with pytest.raises(CompileError, match=r"map overflow, value struct: field packets is "
                                           r"at offset 8 \(8 bytes\) in the source, the "
                                           r"collector expects offset 0 .*different versions"):
        FlowProgram(bpf_dir=bpf_dir)


def test_two_swapped_fields_of_one_size_are_caught_by_name(bcc_ready, tmp_path: Path):
    """Sizes alone would pass: sport and dport swapped keep the key at 48 bytes."""
    bpf_dir = _bpf_copy(tmp_path, ("    u16 sport;\n    u16 dport;",
                                   "    u16 dport;\n    u16 sport;"))
    with pytest.raises(CompileError) as info:
        FlowProgram(bpf_dir=bpf_dir)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("map flows_a, key struct: field sport is at offset 14 (2 "
                              "bytes) in the source, the collector expects offset 12")


def test_a_renumbered_counter_is_caught(bcc_ready, tmp_path: Path):
    bpf_dir = _bpf_copy(tmp_path, ("#define CNT_TRUNCATED 3", "#define CNT_TRUNCATED 4"))
    with pytest.raises(CompileError, match=r"counter CNT_TRUNCATED is 4 in .*sitevis_types\.h, "
                                           r"the collector expects 3"):
        FlowProgram(bpf_dir=bpf_dir)


def test_a_dying_compiler_child_is_a_clear_error(bcc_ready, tmp_path: Path, monkeypatch):
    from sitevis_collector.kernel import program as kernel

    crash = tmp_path / "crash.py"
    crash.write_text("import os\nos._exit(3)\n")
    monkeypatch.setattr(kernel, "_COMPILER", crash)
    with pytest.raises(CompileError, match=r"ended without an answer \(exit status 3\)"):
        FlowProgram()


@pytest.mark.parametrize("settings, complaint", [
    (KernelSettings(table_size=0), "table_size"),
    (KernelSettings(ringbuf_pages=3), "power of two"),
    (KernelSettings(hook="tcx"), "hook"),
])
def test_bad_settings_are_refused_before_compiling(settings, complaint):
    with pytest.raises(KernelError, match=complaint):
        FlowProgram(settings)


def test_without_capabilities_a_clear_privileges_error(bcc_ready):
    """Root without capabilities (empty bounding set), as a badly written unit would run."""
    code = ("from sitevis_collector.errors import NoPrivilegesError\n"
            "from sitevis_collector.kernel.program import FlowProgram\n"
            "try:\n    FlowProgram()\nexcept NoPrivilegesError as e:\n    print('ERR', e)\n")
    out = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all",
                          sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ERR ") and "CAP_BPF" in out.stdout
    assert out.stdout.count("\n") == 1


def test_too_old_kernel_is_named_in_one_line():
    with pytest.raises(UnsupportedError, match=r"kernel 5\.4\.0-1-amd64 is too old for the tc"):
        check_kernel_version("tc", "5.4.0-1-amd64")
    with pytest.raises(UnsupportedError, match="xdp"):
        check_kernel_version("xdp", "5.15.0")
    check_kernel_version("tc", "5.10.0-30-amd64")
    check_kernel_version("xdp", os.uname().release)  # the test machine's own
