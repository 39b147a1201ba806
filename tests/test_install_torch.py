"""bin/install-torch (what `make install` runs first) picks the torch build: run against a stand-in
interpreter that reports a chosen installed build and index reachability, and logs the pip calls."""

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bin" / "install-torch"
CPU_INDEX = "https://cpu.index.invalid/whl/cpu"

# The stand-in: `-c` (the installed-build probe) prints $HAVE or fails, `-` (the reachability probe)
# succeeds when $REACHABLE is 1, `-m pip ...` appends its arguments to $PIP_LOG.
FAKE_PYTHON = """#!/bin/sh
case "$1" in
    -c) [ -n "$HAVE" ] && echo "$HAVE" && exit 0; exit 1 ;;
    -) cat >/dev/null; [ "$REACHABLE" = 1 ] ;;
    -m) shift 2; echo "$*" >> "$PIP_LOG" ;;
esac
"""


def install(tmp_path, build, *, have="", reachable=False, gpu=False):
    """Run the script for `build`; (its stdout, the pip calls it made, its exit code)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    python = bindir / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    if gpu:
        smi = bindir / "nvidia-smi"
        smi.write_text("#!/bin/sh\necho 'GPU 0: stand-in'\n")
        smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "pip.log"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "PYTHON": str(python), "CPU_INDEX": CPU_INDEX,
           "HAVE": have, "REACHABLE": "1" if reachable else "0", "PIP_LOG": str(log),
           "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run(["sh", str(SCRIPT), build], env=env, capture_output=True, text=True, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return result.stdout + result.stderr, calls, result.returncode


def test_no_gpu_gets_the_cpu_build_from_the_cpu_index(tmp_path):
    _, calls, rc = install(tmp_path, "auto", reachable=True)
    assert rc == 0 and calls == [f"install -q --index-url {CPU_INDEX} torch>=2.2 torchvision>=0.17"]


def test_unreachable_cpu_index_falls_back_to_pips_index(tmp_path):
    out, calls, rc = install(tmp_path, "auto", reachable=False)
    assert rc == 0 and calls == ["install -q torch>=2.2 torchvision>=0.17"]
    assert "cannot be reached" in out


def test_a_gpu_gets_the_default_cuda_build(tmp_path):
    _, calls, rc = install(tmp_path, "auto", reachable=True, gpu=True)
    assert rc == 0 and calls == ["install -q torch>=2.2 torchvision>=0.17"]


@pytest.mark.parametrize("have", ["cpu", "cuda"])
def test_auto_keeps_an_installed_torch(tmp_path, have):
    _, calls, rc = install(tmp_path, "auto", have=have, reachable=True, gpu=have == "cuda")
    assert rc == 0 and calls == []


def test_naming_the_other_build_replaces_the_installed_one(tmp_path):
    out, calls, rc = install(tmp_path, "cpu", have="cuda", reachable=True)
    assert rc == 0 and "replacing the installed cuda build" in out
    assert calls == ["uninstall -q -y torch torchvision",
                     f"install -q --index-url {CPU_INDEX} torch>=2.2 torchvision>=0.17"]


def test_naming_the_installed_build_changes_nothing(tmp_path):
    _, calls, rc = install(tmp_path, "cuda", have="cuda")
    assert rc == 0 and calls == []


def test_an_unknown_build_is_refused(tmp_path):
    out, calls, rc = install(tmp_path, "rocm")
    assert rc == 2 and calls == [] and "TORCH must be auto, cpu or cuda" in out
