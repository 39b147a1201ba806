"""`--ray-address auto` resolves the cluster as Ray does, then gets the same bounded check as an
explicit address: a stale record of a stopped cluster is one line and exit 2, not Ray's long retries."""

import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'convcov[ray]'); make test installs it")


def sweep_with_auto(tmp_path, ray_tmp):
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "convcov_core", "sweep", "run", "--name", "a", "--model", "convmixer-8/1",
         "--epochs", "1", "--seeds", "0", "--executor", "ray", "--ray-address", "auto",
         "--db", str(tmp_path / "runs.db")],
        capture_output=True, text=True, env=env, timeout=90)  # Ray's own wait on a stale record: > 120 s


def test_a_stale_record_of_a_stopped_cluster_is_one_line(tmp_path):
    ray_tmp = tmp_path / "raytmp"
    (ray_tmp / "ray").mkdir(parents=True)
    with socket.socket() as held:  # bound, never listening: refused, and no test cluster can take the port
        held.bind(("127.0.0.1", 0))
        stale = f"127.0.0.1:{held.getsockname()[1]}"
        (ray_tmp / "ray" / "ray_current_cluster").write_text(stale)
        done = sweep_with_auto(tmp_path, ray_tmp)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"convcov: error: no Ray cluster answers at {stale}") and \
        done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "runs.db").exists()


def test_no_cluster_on_this_machine_is_one_line(tmp_path):
    done = sweep_with_auto(tmp_path, tmp_path / "empty")
    if "no Ray cluster runs on this machine" not in done.stderr:
        pytest.skip("a Ray cluster of another process runs on this machine, and 'auto' finds it")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
