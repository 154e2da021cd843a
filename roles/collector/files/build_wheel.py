"""Build the sitevis-collector wheel on the controller, reproducibly.

Usage: build_wheel.py SOURCE_DIR OUT_DIR ("~" expanded; OUT_DIR is made, outside the
checkout: the role's collector_wheel_cache_dir). Prints {"wheel": path}. The source is
copied to a fresh directory first so stale build/ leftovers never end up in the wheel,
and SOURCE_DATE_EPOCH pins file times: the same source gives the same bytes, so copying
it to the boxes changes nothing when nothing changed.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

IGNORE = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "*.pyc")


def main() -> int:
    source, out = (Path(arg).expanduser().resolve() for arg in sys.argv[1:3])
    if not (source / "pyproject.toml").is_file():
        print(f"build_wheel: {source} has no pyproject.toml", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800", "PIP_NO_INDEX": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    with tempfile.TemporaryDirectory(prefix="sitevis-wheel-") as tmp:
        tree = Path(tmp) / "src"
        shutil.copytree(source, tree, ignore=IGNORE)
        built = Path(tmp) / "out"
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "-q", "-w", str(built), str(tree)],
            env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"build_wheel: pip wheel failed: {proc.stderr.strip()[-2000:]}",
                  file=sys.stderr)
            return 1
        (wheel,) = built.glob("*.whl")
        target = out / wheel.name
        # Atomically, staged beside the cache directory (same file system, never inside
        # it): a rollout running beside this one (Molecule's scenarios share the cache)
        # may be copying the wheel, or the whole directory, to a box right now.
        staging = out.parent / f".{out.name}.partial-{os.getpid()}"
        staging.mkdir(exist_ok=True)
        try:
            shutil.copyfile(wheel, staging / wheel.name)
            os.replace(staging / wheel.name, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    print(json.dumps({"wheel": str(target)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
