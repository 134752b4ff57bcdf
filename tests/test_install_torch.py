"""tools/install_torch.py: which PyTorch build `make install` asks pip for, tested offline.

The GPU is faked with a stub `nvidia-smi` on PATH; the script runs with --dry-run in an empty
virtual environment (no torch in it) and prints the exact pip command it would run.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import venv
from pathlib import Path

import install_torch  # tools/ is on pytest's pythonpath
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "install_torch.py"
CPU = "https://download.pytorch.org/whl/cpu"


@pytest.fixture(scope="module")
def empty_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh virtual environment with nothing installed (no torch)."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=False)
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _bin(tmp_path: Path, gpu: bool | None) -> Path:
    """A PATH folder: with a working stub nvidia-smi (gpu=True), a failing one (False) or none."""
    folder = tmp_path / "bin"
    folder.mkdir()
    if gpu is not None:
        stub = folder / "nvidia-smi"
        works = 'echo "GPU 0: Stub GPU (UUID: GPU-0)"'
        body = works if gpu else "echo 'NVIDIA-SMI has failed'; exit 9"
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return folder


def _dry_run(python: Path, path: Path, *args: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("TORCH", "TORCH_CPU_INDEX")}
    clean |= {"PATH": str(path), **env}
    out = subprocess.run(
        [str(python), str(SCRIPT), "--dry-run", *args],
        capture_output=True,
        text=True,
        env=clean,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


def _pip(python: Path, *extra: str) -> str:
    req = install_torch.torch_requirement()
    return " ".join(
        [str(python), "-m", "pip", "install", "--timeout", "20", "--retries", "1", *extra, req]
    )


def test_requirement_comes_from_requirements_txt():
    line = next(
        ln for ln in (ROOT / "requirements.txt").read_text().splitlines() if ln.startswith("torch")
    )
    assert install_torch.torch_requirement() == line.split("#")[0].strip().replace(" ", "")
    assert install_torch.torch_requirement().startswith("torch>=")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU default is Linux's")
def test_no_gpu_takes_the_cpu_index(empty_python: Path, tmp_path: Path):
    assert _dry_run(empty_python, _bin(tmp_path, None)) == _pip(empty_python, "--index-url", CPU)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU default is Linux's")
def test_a_failing_nvidia_smi_counts_as_no_gpu(empty_python: Path, tmp_path: Path):
    assert _dry_run(empty_python, _bin(tmp_path, False)) == _pip(empty_python, "--index-url", CPU)


def test_gpu_takes_the_default_wheel(empty_python: Path, tmp_path: Path):
    assert _dry_run(empty_python, _bin(tmp_path, True)) == _pip(empty_python)


def test_reader_overrides(empty_python: Path, tmp_path: Path):
    gpu, none = _bin(tmp_path, True), tmp_path / "empty"
    none.mkdir()
    assert _dry_run(empty_python, gpu, "--torch", "cpu") == _pip(empty_python, "--index-url", CPU)
    assert _dry_run(empty_python, none, "--torch", "cuda") == _pip(empty_python)
    # `make lab TORCH=cpu` passes --torch; the environment variable works alone too.
    assert _dry_run(empty_python, gpu, TORCH="cpu") == _pip(empty_python, "--index-url", CPU)
    mirror = "https://mirror.example/whl/cpu"
    assert _dry_run(empty_python, gpu, "--torch", "cpu", TORCH_CPU_INDEX=mirror) == _pip(
        empty_python, "--index-url", mirror
    )


def test_bad_setting_is_refused(empty_python: Path, tmp_path: Path):
    out = subprocess.run(
        [str(empty_python), str(SCRIPT), "--dry-run", "--torch", "rocm"],
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path)},
        timeout=60,
    )
    assert out.returncode == 2 and "TORCH must be auto, cpu or cuda, got 'rocm'" in out.stderr


def test_installed_torch_is_kept(tmp_path: Path):
    """This interpreter has torch (as CI's venv has): nothing is installed, whatever TORCH says."""
    out = _dry_run(Path(sys.executable), _bin(tmp_path, None), "--torch", "cpu")
    assert out.startswith("torch ") and "already installed: kept" in out
    assert "pip install" not in out


@pytest.mark.parametrize(
    ("setting", "platform", "gpu", "want"),
    [
        ("auto", "linux", False, "cpu"),
        ("auto", "linux", True, "default"),
        ("auto", "darwin", False, "default"),
        ("auto", "win32", False, "default"),
        ("cpu", "darwin", True, "cpu"),
        ("cuda", "linux", False, "default"),
    ],
)
def test_choose_build(setting: str, platform: str, gpu: bool, want: str):
    assert install_torch.choose_build(setting, platform, gpu) == want


def test_unreachable_index_falls_back_fast(monkeypatch: pytest.MonkeyPatch, capsys):
    """No answer from the CPU index: one line says so and the default wheel is installed."""
    import time

    start = time.perf_counter()
    assert not install_torch.reachable("http://127.0.0.1:9/whl/cpu")  # closed port
    assert not install_torch.reachable("file:///nonexistent/whl/cpu")
    assert time.perf_counter() - start < 5

    def no_torch(name):
        raise install_torch.importlib.metadata.PackageNotFoundError(name)

    ran: list[list[str]] = []
    monkeypatch.setattr(install_torch.importlib.metadata, "version", no_torch)
    monkeypatch.setattr(install_torch, "has_nvidia_gpu", lambda: False)
    monkeypatch.setattr(install_torch.sys, "platform", "linux")
    monkeypatch.setattr(
        install_torch.subprocess,
        "run",
        lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0),
    )
    assert install_torch.main(["--index", "http://127.0.0.1:9/whl/cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [
        "PyTorch's CPU index http://127.0.0.1:9/whl/cpu is not reachable: "
        "installing the default torch."
    ]
    assert ran == [install_torch.pip_command("default", install_torch.torch_requirement())]
    assert "--index-url" not in ran[0] and "--timeout" in ran[0] and "--retries" in ran[0]


def test_makefile_passes_the_setting(tmp_path: Path):
    """`make install TORCH=cpu` runs the script with that setting before the requirements."""
    out = subprocess.run(
        ["make", "-n", "-B", "install", "TORCH=cpu", f"VENV={tmp_path / 'v'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    script = next(i for i, ln in enumerate(out) if "tools/install_torch.py --torch cpu" in ln)
    reqs = next(i for i, ln in enumerate(out) if "pip install -r requirements.txt" in ln)
    d2l = next(i for i, ln in enumerate(out) if 'pip install --no-deps "d2l==' in ln)
    assert script < reqs < d2l
