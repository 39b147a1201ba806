"""Sweeps on a real Ray cluster started here: a head and a second node on 127.0.0.1, one CPU each
(tests/helpers/ray_cluster.py), driven through the command line as a user would."""

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convcov_core import reproduce as R
from convcov_core.sweep import Sweep, SweepStore, ray_cluster, ray_job
from convcov_core.train import TrainConfig
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


def apart_grid(name: str, max_steps: int) -> Sweep:
    base = TrainConfig(model="convmixer-8/1", kernel_size=3, epochs=1, batch_size=16, max_steps=max_steps, device="cpu")
    return Sweep(name, base, {"kernel_size": [3, 5]}, ["default", "gaussian"], [0, 1]).validate()


def test_the_apps_probe_and_sweep_run_in_processes_of_their_own(cluster, tmp_path):
    """The app's way (ray_job): this process asks and drives through children and never joins Ray itself."""
    address, _ = cluster
    spec = ray_job.probe(address)
    assert (spec.nodes, spec.resources["CPU"], spec.slots) == (2, 2.0, 2)
    assert spec.describe().startswith(f"Ray at {address}: 2 node(s), 2 CPU(s), 0 GPU(s)")
    events = []
    outcome = ray_job.run_sweep_apart(apart_grid("apart", 2), tmp_path / "runs.db", spec, events.append)
    assert (outcome.ran, outcome.failed, outcome.cancelled) == (8, 0, False)
    assert_each_trial_once(tmp_path / "runs.db", "apart", 8)
    assert [e.kind for e in events].count("done") == 8
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def test_a_driver_that_dies_mid_sweep_is_driver_lost_here_and_its_stored_trials_stay(cluster, tmp_path):
    address, _ = cluster
    spec = ray_job.probe(address)
    killed = []

    def kill_the_driver_once_a_trial_is_stored(event):
        if event.kind == "done" and not killed:
            [driver] = [p for p in multiprocessing.active_children() if p.name == "convcov-ray-driver"]
            os.kill(driver.pid, signal.SIGKILL)
            killed.append(event.n_finished)

    with pytest.raises(ray_job.DriverLost, match=r"ended before it had finished \(killed by SIGKILL\)"):
        ray_job.run_sweep_apart(apart_grid("lost", 60), tmp_path / "runs.db", spec,
                                kill_the_driver_once_a_trial_is_stored)
    store = SweepStore(tmp_path / "runs.db")
    stored = len(store.finished(store.keys("lost")))
    assert killed and killed[0] <= stored < 8
    assert not [p for p in multiprocessing.active_children() if p.name == "convcov-ray-driver"]


def descendants(pid: int) -> dict[int, str]:
    """{pid: name} of the processes below `pid` now, from /proc."""
    children: dict[int, list[int]] = {}
    names = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                name, _, fields = (entry / "stat").read_text().partition(" (")[2].rpartition(")")
                children.setdefault(int(fields.split()[1]), []).append(int(entry.name))
                names[int(entry.name)] = name
            except (OSError, IndexError, ValueError):
                continue
    found, todo = {}, list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found[child] = names[child]
        todo += children.get(child, [])
    return found


def test_a_ray_of_its_own_starts_in_the_sweeps_driver_and_ends_with_it(tmp_path):
    """CONVCOV_RAY_LOCAL's way: nothing starts before the sweep; its driver starts Ray and takes it along."""
    before = descendants(os.getpid())  # the module's cluster, when its tests ran first
    spec = ray_job.probe(None, workers=1)
    assert spec.describe().startswith("Ray started on this machine for each sweep: 1 node(s), 1 CPU(s)")
    started = {name for pid, name in descendants(os.getpid()).items() if pid not in before}
    assert not {"gcs_server", "raylet"} & started  # the probe started no Ray
    seen = {}

    def note_the_drivers_processes(event) -> None:
        for driver in (p for p in multiprocessing.active_children() if p.name == "convcov-ray-driver"):
            seen[driver.pid] = "driver"
            seen.update(descendants(driver.pid))

    outcome = ray_job.run_sweep_apart(apart_grid("own", 2), tmp_path / "runs.db", spec, note_the_drivers_processes)
    assert outcome.ran == 8 and "gcs_server" in seen.values() and "raylet" in seen.values(), seen
    deadline = time.monotonic() + 120
    while (left := {pid: name for pid, name in seen.items() if Path(f"/proc/{pid}").exists()}) and \
            time.monotonic() < deadline:
        time.sleep(1)
    assert left == {}
