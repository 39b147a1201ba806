"""Smoke runs of every benchmark with tiny sizes: each executes and ends with its one-line summary.
The timings they print are not checked (no timed assertions); `make bench` runs them for real."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SMOKE_RUNS = {
    "sampling.py": ["--quick", "--repeats", "1"],
    "train_throughput.py": ["--quick"],
    "explorer_latency.py": ["--quick"],
    "page_reruns.py": ["--quick"],
    "agop_memory.py": ["--quick"],
    "depthwise_grad.py": ["--quick"],
    "precision_accuracy.py": ["--quick"],
    "served_training.py": ["--quick"],
    "ensemble_throughput.py": ["--quick"],
    "rfm_memory.py": ["--quick"],
    "sweep_throughput.py": ["--quick"],
    "browser_latency.py": ["--quick"],
    "roofline.py": ["--quick", "--lab-threads", "1"],
    "lab_presets.py": ["--quick"],
    "threads_under_load.py": ["--quick", "--busy", "1"],
}


def test_every_benchmark_has_a_smoke_run():
    scripts = [p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")]
    assert sorted(scripts) == sorted(SMOKE_RUNS)  # _name.py: helpers the scripts share


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMOKE_RUNS))
def test_benchmark_smoke_run(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *SMOKE_RUNS[script]],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "CONVCOV_HOME": str(tmp_path),
             "STREAMLIT_LOGGER_LEVEL": "error"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, "benchmark printed nothing"
    assert lines[-1].lower().startswith("summary"), lines[-1]
