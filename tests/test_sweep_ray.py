"""Sweeps on a real Ray cluster started here: a head and a second node on 127.0.0.1, one CPU each
(tests/helpers/ray_cluster.py), driven through the command line as a user would."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from convcov_core import reproduce as R
from convcov_core.sweep import SweepStore, ray_cluster
from tests.helpers.ray_cluster import free_port, trial_workers
from tests.helpers.ray_cluster import ray_cluster as start_ray_cluster

pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'convcov[ray]'); make test installs it")

TINY_FLAGS = ["--model", "convmixer-8/1", "--epochs", "1", "--batch-size", "16", "--seeds", "0-1",
              "--kernel-size", "3,5"]


@pytest.fixture(scope="module")
def cluster():
    with start_ray_cluster(nodes=2) as started:
        yield started


def sweep_cli(db, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "convcov_core", "sweep", *args, "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stored_runs(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def assert_each_trial_once(db, name: str, n: int) -> None:
    store = SweepStore(db)
    keys = store.keys(name)
    found = store.finished(keys)
    assert len(keys) == n and len(found) == n and stored_runs(db) == n
    assert all(r["status"] == "ok" for r in found.values()), found


def test_a_sweep_runs_on_both_nodes_and_matches_the_local_pool(cluster, tmp_path):
    address, _ = cluster
    ray_db, local_db = tmp_path / "ray.db", tmp_path / "local.db"
    driver = sweep_cli(ray_db, "run", "--name", "r", *TINY_FLAGS, "--max-steps", "2", "--executor", "ray",
                       "--ray-address", address)
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err
    assert f"Ray at {address}: 2 node(s), 2 CPU(s), 0 GPU(s)" in err
    assert_each_trial_once(ray_db, "r", 8)
    local = sweep_cli(local_db, "run", "--name", "r", *TINY_FLAGS, "--max-steps", "2", "--workers", "2")
    assert local.wait(600) == 0
    ray_results, local_results = (SweepStore(db).finished(SweepStore(db).keys("r")) for db in (ray_db, local_db))
    assert ray_results.keys() == local_results.keys()  # same trials, same keys
    for key, found in ray_results.items():  # one thread each, same seed: the same numbers
        assert found["final"]["test_acc"] == local_results[key]["final"]["test_acc"], key


def test_the_claims_suite_trains_on_the_cluster(cluster, tmp_path):
    """reproduce's trials are sweep trials: on Ray each is stored once and the report has every claim."""
    address, _ = cluster
    db, out = tmp_path / "runs.db", tmp_path / "report"
    driver = subprocess.run([sys.executable, "-m", "convcov_core", "reproduce", "--suite", "tiny", "--device", "cpu",
                             "--executor", "ray", "--ray-address", address, "--db", str(db), "--out", str(out),
                             "--quiet"], capture_output=True, text=True, timeout=600)
    assert driver.returncode == 0, driver.stderr
    assert f"Ray at {address}: 2 node(s)" in driver.stderr
    suite = R.build_suite("tiny", device="cpu")
    sweeps = R.suite_sweeps(suite)
    keys = {t.key for g in (sweeps.sources, sweeps.target, sweeps.effect_map, sweeps.frozen_map) for t in g.trials()}
    learned = len(suite.seeds)
    assert stored_runs(db) == len(keys) + learned == R.suite_runs(suite) - len(suite.seeds)  # the CNNs are not stored
    report = R.load_report(out)
    assert [c["id"] for c in report["claims"]] == [1, 2, 3, 4, 5, 6]
    assert all(r["status"] == "ok" for r in report["runs"])


def test_a_ray_worker_killed_mid_trial_is_retried_and_nothing_is_lost_or_doubled(cluster, tmp_path):
    address, processes = cluster
    db = tmp_path / "runs.db"
    driver = sweep_cli(db, "run", "--name", "k", *TINY_FLAGS, "--max-steps", "60", "--model", "convmixer-16/2",
                       "--executor", "ray", "--ray-address", address, "--quiet")
    killed, deadline = None, time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and driver.poll() is None:
        workers = trial_workers(processes)
        if workers:
            time.sleep(1.0)  # into the trial's training
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    out, err = driver.communicate(timeout=900)
    assert killed is not None, "no trial was seen running on the cluster"
    assert driver.returncode == 0, err
    assert "ran 8 trial(s) (0 failed)" in err
    assert_each_trial_once(db, "k", 8)


def test_no_more_trials_train_at_once_than_the_cluster_has_cpus(cluster, tmp_path):
    """A task that reported progress by waiting on Ray (ray.get) lent its CPU to the next task: two
    one-CPU nodes trained up to four trials at once, each slower. Counted from the trial processes."""
    address, processes = cluster
    db = tmp_path / "runs.db"
    driver = sweep_cli(db, "run", "--name", "c", *TINY_FLAGS, "--max-steps", "60", "--model", "convmixer-16/2",
                       "--executor", "ray", "--ray-address", address, "--quiet")
    most, deadline = 0, time.monotonic() + 600
    while driver.poll() is None and time.monotonic() < deadline:
        most = max(most, len(trial_workers(processes)))
        time.sleep(0.1)
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 0, err
    assert_each_trial_once(db, "c", 8)
    assert 1 <= most <= 2, f"{most} trials trained at once on 2 CPUs"


def test_an_unreachable_cluster_gets_one_line_exit_2_and_nothing_written(tmp_path):
    db = tmp_path / "runs.db"
    driver = sweep_cli(db, "run", "--name", "u", *TINY_FLAGS, "--executor", "ray",
                       "--ray-address", f"127.0.0.1:{free_port()}")
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 2
    assert err.startswith("convcov: error: no Ray cluster answers at 127.0.0.1:") and err.count("\n") == 1, err
    assert not db.exists()


def test_without_ray_installed_the_cli_says_how_to_get_it(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from convcov_core.cli import main; "
            f"sys.exit(main(['sweep', 'run', '--name', 'x', '--executor', 'ray', '--db', {str(tmp_path / 'r.db')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"convcov: error: --executor ray needs Ray, which is not installed here: " \
                                  f"{ray_cluster.INSTALL_HINT}"
