"""Everything the monitor installs for the portal, fetched on the controller: the sitevis
wheel and the wheels of the portal's pinned dependencies for the monitor's Python.

Usage: build_wheelhouse.py PROJECT_DIR OUT_DIR PYTHON_VERSION [INDEX_URL] [--postgresql]
       [--rollouts|--no-rollouts]
Prints {"dir": OUT_DIR/<python>, "archive": OUT_DIR/<python>.tar, "wheel": ...,
"requirements": [...]}. The archive holds exactly the wheels of this build, packed the
same way every time (sorted, no times or owners), so the role copies one file (one
transfer instead of one per wheel) and an unchanged build copies nothing. The pins are
the project's (pyproject.toml, extra `portal`, and PyYAML and rich from its
dependencies): one list. psycopg only with --postgresql (SQLite needs nothing); Ansible
and ansible-runner only with --rollouts (the rollout worker runs playbooks).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

BUILD_WHEEL = Path(__file__).resolve().parents[2] / "collector" / "files" / "build_wheel.py"
# What the sitevis wheel is built from: not the whole checkout (venv, caches, images).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "sitevis")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
# pip download names every wheel it resolved, fetched now or earlier.
RESOLVED = re.compile(r"^\s*(?:Saved|File was already downloaded) (\S+\.whl)\s*$", re.M)


def requirements(project: Path, postgresql: bool, rollouts: bool = False) -> list[str]:
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    pins = [r for r in meta["optional-dependencies"]["portal"]
            if postgresql or not r.startswith("psycopg")]
    # The controller's light dependencies the portal's modules import (config: PyYAML;
    # shared formatting in sitevis.talkers: rich); Ansible only for the rollout worker;
    # never matplotlib.
    wanted = ("pyyaml", "rich") + (("ansible",) if rollouts else ())
    pins += [r for r in meta["dependencies"] if r.lower().startswith(wanted)]
    return pins


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    project, out = Path(args[0]).resolve(), Path(args[1]).expanduser().resolve()
    python, index = args[2], (args[3] if len(args) > 3 and args[3] else None)
    wheelhouse = out / f"py{python}"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    pins = requirements(project, "--postgresql" in sys.argv, "--rollouts" in sys.argv)
    with tempfile.TemporaryDirectory(prefix="sitevis-portal-src-") as tmp:
        for name in SOURCES:
            if (project / name).is_dir():
                shutil.copytree(project / name, Path(tmp) / name, ignore=IGNORE)
            else:
                shutil.copyfile(project / name, Path(tmp) / name)
        # The collector role's reproducible build (fixed file times, no index).
        built = subprocess.run([sys.executable, str(BUILD_WHEEL), tmp, str(wheelhouse)],
                               capture_output=True, text=True)
    if built.returncode != 0:
        print(built.stderr, file=sys.stderr)
        return 1
    sitevis_wheel = Path(json.loads(built.stdout)["wheel"])
    for old in wheelhouse.glob("sitevis-*.whl"):  # one sitevis wheel: the one just built
        if old != sitevis_wheel:
            old.unlink()
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    cmd = [sys.executable, "-m", "pip", "download", "-d", str(wheelhouse),
           "--only-binary=:all:", "--python-version", python, *pins]
    if index:
        cmd += ["--index-url", index]
    got = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if got.returncode != 0:
        print(f"build_wheelhouse: pip download failed: {got.stderr.strip()[-2000:]}",
              file=sys.stderr)
        return 1
    wheels = {Path(found).name for found in RESOLVED.findall(got.stdout)}
    archive = pack(wheelhouse, sorted(wheels | {sitevis_wheel.name}))
    print(json.dumps({"dir": str(wheelhouse), "archive": str(archive),
                      "wheel": sitevis_wheel.name, "requirements": pins}))
    return 0


def pack(wheelhouse: Path, names: list[str]) -> Path:
    """WHEELHOUSE.tar of `names`, byte for byte the same for the same wheels; replaced
    only when it differs, so its time and checksum say whether anything changed."""
    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        info.mode = 0o644
        return info

    archive = wheelhouse.parent / f"{wheelhouse.name}.tar"  # py3.11.tar
    fresh = wheelhouse.parent / f"{wheelhouse.name}.tar.new"
    with tarfile.open(fresh, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in names:
            tar.add(wheelhouse / name, arcname=name, filter=plain)
    if archive.exists() and archive.read_bytes() == fresh.read_bytes():
        fresh.unlink()
    else:
        fresh.replace(archive)
    return archive


if __name__ == "__main__":
    sys.exit(main())
