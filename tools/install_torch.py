"""Install PyTorch into this interpreter's environment, choosing the build the machine can use.

    .venv/bin/python tools/install_torch.py [--torch auto|cpu|cuda] [--dry-run]

`make install` (hence `make lab` and `make test`) runs this before the requirements are installed,
so the requirement `torch>=...` is already met and pip does not pull another build.

- torch already installed in this environment: nothing is done (uninstall it to change builds);
- `auto` (the default): on Linux without a working `nvidia-smi`, the CPU build from PyTorch's own
  index (about 1/10 the size of the default CUDA build); elsewhere (a GPU, macOS, Windows), the
  default wheel from PyPI;
- `cpu`: PyTorch's CPU index on any system; `cuda`: the default wheel from PyPI.

When the CPU index cannot be reached (offline mirror, firewall), it says so in one line and installs
the default wheel instead; pip's timeout and retries are bounded so this never hangs.
`--dry-run` prints the pip command it would run and does nothing.
Only the standard library is used: this runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PIP_LIMITS = ["--timeout", "20", "--retries", "1"]  # pip's defaults are 15 s and 5 retries
PROBE_TIMEOUT = 5.0  # seconds to wait for the CPU index before falling back


def torch_requirement(requirements: Path = ROOT / "requirements.txt") -> str:
    """The `torch...` line of requirements.txt without its comment, e.g. 'torch>=2.2'."""
    for line in requirements.read_text(encoding="utf-8").splitlines():
        spec = line.split("#", 1)[0].strip()
        if re.match(r"torch\b(?![-_.\w])", spec):
            return spec.replace(" ", "")
    return "torch"


def has_nvidia_gpu() -> bool:
    """True when `nvidia-smi` is on PATH and lists at least one GPU."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def choose_build(torch: str, platform: str, gpu: bool) -> str:
    """'cpu' (PyTorch's CPU index) or 'default' (PyPI) for the TORCH setting on this machine."""
    if torch not in ("auto", "cpu", "cuda"):
        raise ValueError(f"TORCH must be auto, cpu or cuda, got {torch!r}")
    if torch == "cpu":
        return "cpu"
    if torch == "cuda":
        return "default"
    return "cpu" if platform.startswith("linux") and not gpu else "default"


def pip_command(build: str, requirement: str, index: str = CPU_INDEX) -> list[str]:
    """The pip command that installs `requirement` from the chosen build's index."""
    cmd = [sys.executable, "-m", "pip", "install", *PIP_LIMITS]
    if build == "cpu":
        cmd += ["--index-url", index]
    return cmd + [requirement]


def reachable(index: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when the index answers within `timeout` seconds (local file indexes too)."""
    if index.startswith("file:"):
        return Path(urllib.request.url2pathname(index[5:])).exists()
    try:
        request = urllib.request.Request(index.rstrip("/") + "/torch/", method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except (OSError, urllib.error.URLError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--torch",
        default=os.environ.get("TORCH") or "auto",
        help="auto (default, or $TORCH), cpu or cuda",
    )
    ap.add_argument(
        "--index",
        default=os.environ.get("TORCH_CPU_INDEX") or CPU_INDEX,
        help="PyTorch's CPU wheel index (or a mirror of it)",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the pip command, run nothing")
    args = ap.parse_args(argv)

    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is not None:
        print(f"torch {version} is already installed: kept (pip uninstall torch to change it)")
        return 0

    try:
        build = choose_build(args.torch, sys.platform, has_nvidia_gpu())
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    requirement = torch_requirement()
    cmd = pip_command(build, requirement, args.index)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    if build == "cpu":
        if not reachable(args.index):
            print(
                f"PyTorch's CPU index {args.index} is not reachable: installing the default torch."
            )
        else:
            print(f"No NVIDIA GPU (or TORCH=cpu): PyTorch's CPU build from {args.index}")
            if subprocess.run(cmd).returncode == 0:
                return 0
            print("Installing from PyTorch's CPU index failed: installing the default torch.")
        cmd = pip_command("default", requirement)
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    raise SystemExit(main())
