"""The kernel_headers and bcc roles, run for real with ansible-playbook on this machine
(the whole site on this machine: tests/integration/controller/test_runner.py, the main job)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.harness.tools import tool

REPO = Path(__file__).parents[2]
PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: true
  roles:
    - role: kernel_headers
"""
PROBE = REPO / "roles" / "bcc" / "files" / "bcc_probe.py"


def ansible_playbook(playbook: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json",
           "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    return subprocess.run(
        [tool("ansible-playbook"), "-i", "localhost,",
         "-e", "ansible_python_interpreter=/usr/bin/python3", str(playbook), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )


def stats(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return json.loads(result.stdout)["stats"]["localhost"]


@pytest.fixture
def playbook(tmp_path: Path) -> Path:
    path = tmp_path / "headers.yml"
    path.write_text(PLAYBOOK)
    return path


@pytest.mark.root
def test_kernel_headers_links_generic_headers_once_and_check_mode_changes_nothing(
    playbook: Path, tmp_path: Path
):
    if os.geteuid() != 0:
        pytest.skip("needs root: the role installs packages with apt")
    modules = tmp_path / "modules"
    release = os.uname().release
    extra = ["-e", f"kernel_headers_modules_dir={modules}"]

    check = stats(ansible_playbook(playbook, "--check", *extra))
    assert not (modules / release).exists(), "--check must not create anything"
    assert check["failures"] == 0

    first = stats(ansible_playbook(playbook, *extra))
    assert first["changed"] >= 2
    build, source = modules / release / "build", modules / release / "source"
    assert build.is_symlink() and source.is_symlink()
    assert (source / "include" / "linux" / "kconfig.h").is_file()
    assert os.readlink(build).startswith("/usr/src/linux-headers-")

    second = stats(ansible_playbook(playbook, *extra))
    assert second["changed"] == 0


def run_probe(*prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, "/usr/bin/python3", str(PROBE)],
                          capture_output=True, text=True, timeout=300)


def test_bcc_probe_loads_a_tc_program(bcc_ready):
    result = run_probe()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("BCC OK: TC program loaded")


def test_bcc_probe_names_missing_headers(bcc_ready):
    # A private mount namespace hides this kernel's headers from the probe only.
    release = os.uname().release
    result = run_probe("unshare", "-m", "sh", "-c",
                       f"mount -t tmpfs none /lib/modules/{release} && exec \"$0\" \"$@\"")
    assert result.returncode == 1
    assert result.stdout.strip().splitlines() == [
        f"BCC probe failed: no kernel headers for {release}: include/linux/kconfig.h is in "
        f"neither /lib/modules/{release}/build nor /lib/modules/{release}/source "
        "(run the kernel_headers role)"
    ]
    assert "Traceback" not in result.stderr


def test_bcc_probe_names_missing_privileges(bcc_ready):
    result = run_probe("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                       "--inh-caps=-all", "--bounding-set=-all")
    assert result.returncode == 1
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("BCC probe failed: no privileges to load BPF programs"), result.stdout
