"""Command line: compare end to end, runs list|show|export|delete, download, errors, exit codes."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from convcov_core import covariance
from convcov_core.cli import COMMANDS, build_parser, main
from convcov_core.cli.args import shown_default
from convcov_core.compare import variants_for
from convcov_core.comparison_jobs import ComparisonJobs
from convcov_core.runs import RunStore
from helpers.read_only import read_only
from helpers.runs import fake_run
from helpers.waits import wait_for

REPO = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--dataset", "mnist5k", "--model", "convmixer-16/2", "--kernel-size", "5", "--patch-size", "4",
             "--epochs", "1", "--batch-size", "32", "--max-steps", "3", "--device", "cpu"]


def run_cli(*args, home):
    env = {**os.environ, "CONVCOV_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "convcov_core", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


def test_compare_end_to_end_prints_the_table_and_saves(tmp_path):
    out = tmp_path / "cmp.json"
    proc = run_cli("compare", *TINY_ARGS, "--inits", "default,gaussian", "--freeze", "both",
                   "--seeds", "0,1", "--json", str(out), "--save", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout
    for name in ("default", "gaussian", "default-frozen", "gaussian-frozen"):
        assert f"\n{name} " in table
    assert "reference" in table and "vs default-frozen" in table and "±" in table
    assert "per seed (0, 1)" in table and "95% interval" in table and "Total wall time" in table
    assert "run 8/8 gaussian-frozen seed 1" in proc.stderr  # progress, one line per run off a terminal
    doc = json.loads(out.read_text())
    assert doc["references"]["gaussian-frozen"] == "default-frozen"
    assert [r["variant"] for r in doc["rows"]] == ["default", "gaussian", "default-frozen", "gaussian-frozen"]
    assert len(doc["verdicts"]) == 2
    store = RunStore(tmp_path / "runs.db")
    assert len(store.list()) == 8 and len(store.list_comparisons()) == 1


def test_bad_arguments_exit_2_with_one_line(tmp_path):
    proc = run_cli("compare", "--epochs", "two", home=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "invalid int value: 'two'" in proc.stderr


@pytest.mark.parametrize("argv,words", [
    (["dance"], "invalid choice"),
    (["compare", "--seeds", "a,b"], "integers"),
    (["compare", "--freeze", "sometimes"], "invalid choice"),
    (["compare", *TINY_ARGS, "--dataset", "nope"], "unknown dataset"),
    (["compare", *TINY_ARGS, "--inits", "default,nope"], "unknown init scheme"),
    (["compare", *TINY_ARGS, "--inits", "default,default"], "twice"),
    (["compare", *TINY_ARGS, "--inits", "default,learned", "--learned-from", "last"],
     "a run id, 'example', set:NAME or a .npy/.pt/.pth/.safetensors file"),
    (["compare", *TINY_ARGS, "--inits", "default,learned", "--learned-from", "set:nope"],
     "no covariance set named 'nope'"),
    (["compare", *TINY_ARGS, "--inits", "default,learned", "--learned-from", "missing.npy"], "no such file"),
    (["compare", *TINY_ARGS, "--epochs", "0"], "epochs"),
    (["compare", *TINY_ARGS, "--device", "tpu"], "device"),
    (["covariance", "--kernel-size", "5", "--sigma", "1", "--out", "cov.txt"], ".npy"),
    (["covariance", "--kernel-size", "0", "--sigma", "1", "--out", "cov.npy"], "kernel"),
    (["covariance", "--kernel-size", "5", "--sigma", "1", "--out", "/no/such/dir/cov.npy"], "does not exist"),
    (["sample", "--covariance", "missing.npy", "--out", "f.npy"], "no such file"),
    (["runs", "show", "999"], "no run with id 999"),
    (["runs", "delete", "5"], "no run with id 5"),
    (["runs"], "required"),
    (["learned", "--run", "999"], "no run with id 999"),
    (["learned", "--run", "1", "--checkpoint", "x.pt"], "not allowed with"),
    (["learned", "--kernel-size", "0"], "argument --kernel-size: expected a whole number >= 1, got '0'"),
    (["learned", "--depth", "0"], "depth"),
    (["learned", "--kernel-size", "999"], "CONVCOV_MAX_KERNEL"),
    (["covariance", "--kernel-size", "201", "--sigma", "2", "--out", "cov.npy"], "above 51"),
    (["sample", "--kernel-size", "53", "--out", "f.npy"], "CONVCOV_MAX_KERNEL"),
    (["compare", *TINY_ARGS, "--kernel-size", "301"], "301 x 301 filters is a 90,601 x 90,601 matrix"),
    (["frequency", "--kernel-size", "201"], "CONVCOV_MAX_KERNEL"),
    (["cnfa", "--kernel-size", "99"], "CONVCOV_MAX_KERNEL"),
    (["learned", "--out", "covs.txt"], ".npy"),
])
def test_bad_input_is_one_line_and_exit_code_2(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("convcov: error: ") and words in err


SWEEP = ["sweep", "run", "--name", "s", "--model", "convmixer-8/1", "--max-steps", "1", "--seeds", "0"]
RANGES = {"sample --kernel-size": "expected a whole number >= 1",
          "sweep run --cpus-per-trial": "expected a number > 0 and <= 1024",
          "sweep run --gpus-per-trial": "expected a number >= 0 and <= 64",
          "rfm --bandwidth": "expected a number >= 0.01 and <= 1000"}


@pytest.mark.parametrize("argv", [
    ["sample", "--kernel-size", "0", "--out", "f.npy"],  # used 9
    ["sample", "--kernel-size", "-3", "--out", "f.npy"],
    ["sample", "--kernel-size", "0", "--covariance", "c.npy", "--out", "f.npy"],
    *([*SWEEP, "--cpus-per-trial", bad] for bad in ("-1", "0", "nan", "inf", "1e12")),  # all accepted
    *([*SWEEP, "--gpus-per-trial", bad] for bad in ("-1", "nan", "inf", "65")),
    *(["rfm", "--bandwidth", bad] for bad in ("inf", "nan", "0", "0.001", "1e6")),  # inf: "M is zero"
])
def test_numbers_out_of_range_are_refused_in_one_line_naming_the_range(argv, capsys, tmp_path, monkeypatch):
    """Out of range, nan and inf: one line naming the flag and its range, exit 2, nothing written or
    trained (sample wrote 9 x 9 filters for --kernel-size 0; the sweep took any number of CPUs)."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "c.npy", covariance.gaussian(3, 1.0).numpy())
    flag = next(a for a in argv if a in ("--kernel-size", "--cpus-per-trial", "--gpus-per-trial", "--bandwidth"))
    assert main([*argv, "--db", str(tmp_path / "runs.db")] if argv[0] == "sweep" else argv) == 2
    err = capsys.readouterr().err
    range_text = RANGES[f"{' '.join(argv[:2 if argv[0] == 'sweep' else 1])} {flag}"]
    assert err == f"convcov: error: argument {flag}: {range_text}, got {argv[argv.index(flag) + 1]!r}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npy"]


def test_the_help_states_each_checked_range():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    helps = {f"sample {a.option_strings[0]}": a.help for a in commands["sample"]._actions if a.option_strings}
    sweep_run = commands["sweep"]._subparsers._group_actions[0].choices["run"]
    helps.update({f"sweep run {a.option_strings[0]}": a.help for a in sweep_run._actions if a.option_strings})
    helps.update({f"rfm {a.option_strings[0]}": a.help for a in commands["rfm"]._actions if a.option_strings})
    assert "odd, 1 to 51 ($CONVCOV_MAX_KERNEL)" in helps["sample --kernel-size"]
    assert "> 0 and <= 1024" in helps["sweep run --cpus-per-trial"]
    assert ">= 0 and <= 64" in helps["sweep run --gpus-per-trial"]
    assert ">= 0.01 and <= 1000" in helps["rfm --bandwidth"]


def test_kernel_size_cap_follows_convcov_max_kernel(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONVCOV_MAX_KERNEL", "61")
    out = tmp_path / "cov.npy"
    assert main(["covariance", "--kernel-size", "53", "--sigma", "2", "--out", str(out)]) == 0
    assert np.load(out).shape == (53 * 53, 53 * 53)
    assert main(["covariance", "--kernel-size", "63", "--sigma", "2", "--out", str(out)]) == 2
    assert "above 61" in capsys.readouterr().err


ALLOCATOR_FAILURES = [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 13057926408 bytes. Error code 12 (Cannot allocate memory)"),
     "tried to allocate 13.1 GB"),
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total "
                                 "capacity of 79.19 GiB of which 3.10 GiB is free."), "tried to allocate 20.00 GiB"),
    (MemoryError("Unable to allocate 12.2 GiB for an array with shape (40401, 40401) and data type float64"),
     "tried to allocate 12.2 GiB"),
]


@pytest.mark.parametrize("failure,size", ALLOCATOR_FAILURES)
def test_running_out_of_memory_is_one_line_naming_the_size_and_the_flags(failure, size, capsys, monkeypatch,
                                                                        tmp_path):
    def allocate(*args, **kwargs):
        raise failure

    monkeypatch.setattr("convcov_core.init.sample_scheme", allocate)
    assert main(["sample", "--n", "1000000000", "--out", str(tmp_path / "f.npy")]) == 2
    err = capsys.readouterr().err
    assert err == f"convcov: error: not enough memory: {size}; try a smaller --n\n"


def test_other_runtime_errors_still_fail_with_exit_code_1(capsys, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("something else went wrong")

    monkeypatch.setattr("convcov_core.init.sample_scheme", broken)
    assert main(["sample", "--out", str(tmp_path / "f.npy")]) == 1
    assert "failed: RuntimeError: something else went wrong" in capsys.readouterr().err


def test_compare_keeps_a_timm_models_own_kernel_and_patch_sizes_unless_asked(capsys):
    args = ["compare", "--model", "timm:convnext_atto", "--dataset", "noisy-bars", "--dataset-param",
            "image_size=32", "--epochs", "1", "--max-steps", "1", "--batch-size", "16", "--seeds", "0",
            "--inits", "default", "--quiet"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "timm:convnext_atto k=its own p=its own on noisy-bars" in out  # not our ConvMixer's 9 / 2
    assert "of 7 × 7 filters" in err  # the reach note names ConvNeXt's own 7 x 7 kernels
    assert main([*args, "--kernel-size", "5"]) == 0
    assert "timm:convnext_atto k=5 p=its own" in capsys.readouterr().out


def test_compare_notes_filters_wider_than_the_maps_before_training(capsys):
    args = [*TINY_ARGS, "--kernel-size", "9", "--seeds", "0", "--max-steps", "1", "--quiet"]
    assert main(["compare", *args]) == 0  # 28 x 28 digits, patch 4: 7 x 7 maps use 13 x 13
    assert "note:" not in capsys.readouterr().err
    assert main(["compare", *args, "--patch-size", "7"]) == 0  # 4 x 4 maps
    assert "convcov: note: 2 of 2 depthwise layers have filters wider" in capsys.readouterr().err


def test_progress_in_a_log_file_is_a_line_every_log_interval_and_one_per_run():
    import io

    from convcov_core.cli import TerminalProgress
    from convcov_core.train import ProgressEvent

    def one_run(progress):
        for step in range(1, 4):
            progress(ProgressEvent("step", step, 3, 1, loss=2.0 / step, variant="gaussian", seed=0, n_runs=2))
        progress(ProgressEvent("done", 3, 3, 1, test_acc=55.5, variant="gaussian", seed=0, n_runs=2))

    every_step, log = TerminalProgress(io.StringIO(), log_interval=0), io.StringIO()
    one_run(every_step)
    lines = every_step.stream.getvalue().splitlines()
    assert lines[0].startswith("17% run 1/2 gaussian seed 0 epoch 1 step 1/3 loss 2.000 ETA")
    assert len(lines) == 4 and lines[-1].startswith("run 1/2 gaussian seed 0: test 55.50%")
    assert "\r" not in every_step.stream.getvalue()  # no terminal control codes in a file
    one_run(TerminalProgress(log))  # 30 s between progress lines: the first step, then the result
    first, result = log.getvalue().splitlines()
    assert first.startswith("17% run 1/2 gaussian seed 0 epoch 1 step 1/3")
    assert result.startswith("run 1/2 gaussian seed 0: test 55.50%")


def test_variants_for_freeze_modes():
    assert variants_for(["default", "gaussian"], "none") == (
        {"default": {"init": "default", "freeze_filters": False},
         "gaussian": {"init": "gaussian", "freeze_filters": False}},
        {"default": None, "gaussian": "default"})
    variants, refs = variants_for(["default", "gaussian"], "filters")
    assert list(variants) == ["default-frozen", "gaussian-frozen"]
    assert refs["gaussian-frozen"] == "default-frozen"
    variants, refs = variants_for(["default", "gaussian"], "both")
    assert list(variants) == ["default", "gaussian", "default-frozen", "gaussian-frozen"]
    assert refs == {"default": None, "gaussian": "default", "default-frozen": None,
                    "gaussian-frozen": "default-frozen"}


def test_runs_list_show_export_delete(tmp_path, capsys):
    db = str(tmp_path / "runs.db")
    store = RunStore(db)
    first = store.save(fake_run(seed=4, acc=88.25), name="mine")
    second = store.save(fake_run(seed=5))
    assert main(["runs", "list", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert "88.25" in listing and "mine" in listing and "gaussian" in listing
    assert main(["runs", "list", "--json", "--db", db]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [second, first]
    assert main(["runs", "show", str(first), "--db", db]) == 0
    shown = capsys.readouterr().out
    assert f"run {first}: ok" in shown and "sigma" in shown and "blocks.1.0.fn.0" in shown
    assert main(["runs", "export", str(first), str(tmp_path / "x.json"), "--db", db]) == 0
    assert json.loads((tmp_path / "x.json").read_text())["id"] == first
    assert (tmp_path / "x.csv").read_text().startswith("step,epoch,loss,lr")
    assert main(["runs", "delete", str(first), "--db", db]) == 0
    assert [r.id for r in store.list()] == [second]
    assert main(["runs", "list", "--comparisons", "--db", db]) == 0
    assert "no comparisons" in capsys.readouterr().out


def test_a_read_only_store_is_read_and_a_save_refused_before_any_training(tmp_path, capsys, monkeypatch):
    """A read-only store (`chattr +i`, or no write permission): the listings work; `compare --save`,
    `cnfa --save`, `sweep run`, `reproduce` and `regimes` refuse in one line naming another --db or
    CONVCOV_HOME, exit 2, before they train (training here fails the test)."""
    from convcov_core import sweep
    from convcov_core.cli import analysis, training
    from convcov_core.cli import reproduce as reproduce_cli
    from convcov_core.cli import sweep as sweep_cli

    db = tmp_path / "runs.db"
    RunStore(db).save(fake_run(), name="kept")

    def trained(*args, **kwargs):
        raise AssertionError("trained before refusing")

    monkeypatch.setattr(training, "compare", trained)
    monkeypatch.setattr(analysis.model_pairs, "train_cnn_and_save", trained)
    monkeypatch.setattr(sweep_cli, "trial_seconds", trained)  # times a few steps
    monkeypatch.setattr(sweep, "run_sweep", trained)
    monkeypatch.setattr(reproduce_cli.reproduce, "reproduce", trained)
    monkeypatch.setattr(reproduce_cli.regimes, "run_regime_map", trained)
    with read_only(db):
        for listing in (["runs", "list"], ["runs", "list", "--comparisons"], ["sweep", "list"]):
            assert main([*listing, "--db", str(db)]) == 0, capsys.readouterr().err
        assert "kept" in capsys.readouterr().out
        for save in (["compare", *TINY_ARGS, "--inits", "default", "--seeds", "0", "--save"],
                     ["cnfa", "--save", "--epochs", "1", "--max-steps", "1"],
                     ["sweep", "run", "--name", "s", *TINY_ARGS, "--seeds", "0", "--quiet"],
                     ["reproduce", "--suite", "tiny", "--out", str(tmp_path / "report"), "--quiet"],
                     ["regimes", "--quiet"]):
            assert main([*save, "--db", str(db)]) == 2, save
            err = capsys.readouterr().err
            assert err.startswith(f"convcov: error: {db} is read-only") and err.count("\n") == 1, err
            assert "--db FILE" in err and "CONVCOV_HOME" in err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "convcov"
    if not script.exists():
        pytest.skip("package not installed in this environment (pip install -e .)")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "compare" in proc.stdout


@pytest.mark.parametrize("precision,shown", [("fp32", "device cpu, fp32"), ("bf16", "device cpu, bf16 autocast")])
def test_compare_trains_in_the_precision_asked_and_says_so(tmp_path, precision, shown):
    proc = run_cli("compare", *TINY_ARGS, "--inits", "default", "--seeds", "0", "--precision", precision,
                   "--quiet", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert shown in proc.stdout.splitlines()[0]


def test_download_names_what_it_fetched_and_refuses_unknown_names(tmp_path, monkeypatch, capsys):
    proc = run_cli("download", "mnist5k", home=tmp_path)
    assert proc.returncode == 0 and "ships with convcov; nothing to download" in proc.stdout
    proc = run_cli("download", "imagenet", home=tmp_path)
    assert proc.returncode == 2 and "unknown dataset 'imagenet'" in proc.stderr
    # A real fetch needs the internet: here torchvision finds fixture files already in the data root
    # (in process, so its checksum of the real download can be relaxed to presence).
    import torchvision.datasets.cifar as cifar

    from convcov_core.cli import main
    from helpers.files import write_cifar10
    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    write_cifar10(tmp_path / "data")
    assert main(["download", "cifar10", "--data-root", str(tmp_path / "data")]) == 0
    assert "cifar10: 30 training and 5 test images in" in capsys.readouterr().out


def test_learned_init_defaults_to_the_bundled_example(capsys):
    assert main(["compare", *TINY_ARGS, "--inits", "default,learned", "--seeds", "0", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "learned init: 8 layer(s) of 9 x 9 covariances from the bundled example (convmixer-64/8 on mnist5k)" in err
    assert "learned" in out


def test_learned_init_from_a_file_or_a_saved_set_written_by_learned(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))
    covs = tmp_path / "covs.npy"
    assert main(["learned", "--kernel-size", "5", "--depth", "2", "--out", str(covs), "--save-set", "mine"]) == 0
    capsys.readouterr()
    for source, origin in ((str(covs), str(covs)), ("set:mine", "covariance set 'mine'")):
        assert main(["compare", *TINY_ARGS, "--inits", "default,learned", "--learned-from", source,
                     "--seeds", "0", "--quiet"]) == 0
        out, err = capsys.readouterr()
        assert f"learned init: 2 layer(s) of 5 x 5 covariances from {origin}" in err and "learned" in out


def test_learned_init_from_a_file_names_what_is_wrong_with_it(tmp_path, capsys):
    args = ["compare", *TINY_ARGS, "--inits", "default,learned", "--seeds", "0", "--quiet", "--learned-from"]
    odd = tmp_path / "odd.npy"
    np.save(odd, np.zeros((3, 4)))
    assert main([*args, str(odd)]) == 2
    assert "a covariance must be a square matrix, got shape (3, 4)" in capsys.readouterr().err
    np.save(odd, np.zeros((2, 2, 4, 4)))
    assert main([*args, str(odd)]) == 2
    assert "expected depth x k^2 x k^2 covariances" in capsys.readouterr().err
    indefinite = tmp_path / "indefinite.npy"
    S = covariance.gaussian(5, 1.0).numpy()
    np.save(indefinite, np.stack([S, S - 0.5 * np.eye(25)]))
    assert main([*args, str(indefinite)]) == 0
    assert "note: layer 2 of" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["covariance", "--sigma", "1", "--out", "cov.npy"], ["compare", "--quiet"],
                                     ["sample", "--out", "f.npy"]])
def test_an_even_kernel_size_is_refused_in_one_line(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--kernel-size", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--kernel-size 8 is even" in err and "try 7 or 9" in err


def test_every_option_of_every_command_says_what_it_does():
    parser = build_parser()
    commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0].choices
    parsers = dict(commands)
    for name, sub in commands.items():  # runs list / show / export / delete
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.update({f"{name} {child}": p for child, p in action.choices.items()})
    missing = {name: [a.option_strings[0] for a in p._actions if a.option_strings and not a.help]
               for name, p in parsers.items()}
    assert {name: flags for name, flags in missing.items() if flags} == {}


def test_a_step_cap_is_named_in_the_setup_line(tmp_path):
    proc = run_cli("compare", *TINY_ARGS, "--inits", "default", "--seeds", "0", "--quiet", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 epoch(s) capped at 3 step(s)" in proc.stdout.splitlines()[0]


def command_parsers(parser=None, path=()):
    """(command words, parser) of every command and action (`sweep run`, `runs list`, ...)."""
    parser = parser or build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
        return
    for name, child in subs[0].choices.items():
        yield from command_parsers(child, (*path, name))


def option_help(parser, action) -> str:
    """The option's lines of the parser's --help, on one line."""
    formatter = parser._get_formatter()
    formatter.add_argument(action)
    return " ".join(formatter.format_help().split())


def test_every_options_help_shows_its_default():
    """Every option that takes a value and has a default other than None states it in --help."""
    seen, missing = set(), []
    for name, parser in command_parsers():
        seen.add(name.split()[0])
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
                continue
            text, shown = option_help(parser, action), shown_default(action.default)
            if f"(default: {shown})" not in text and f"default {shown}" not in text:
                missing.append(f"{name} {action.option_strings[-1]}: {text}")
    assert seen == set(COMMANDS) and missing == []


def test_rfm_help_states_its_noise_levels_seeds_images_and_cnn_epochs(capsys):
    with pytest.raises(SystemExit):
        main(["rfm", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for says in ("--noise LIST background noise std levels, e.g. 0.25,0.5,1 (default: 0.25,0.5,1)",
                 "--seeds SEEDS seeds (data draw, split, filters, CNN), e.g. 0,1,2 or 0-4 (default: 0,1,2)",
                 "--n-train N_TRAIN training images (a share is held out to choose ridge and M) (default: 1000)",
                 "--n-test N_TEST test images (default: 500)", "(default: 400)",
                 "--cnn-epochs CNN_EPOCHS training epochs of the CNN (default: 30)",
                 "3 noise levels x 3 seeds x 4 models on 1,000 training and 500 test images, the CNN 30 epochs"):
        assert says in text


def test_compare_prints_its_estimate_before_it_trains(capsys):
    assert main(["compare", *TINY_ARGS, "--inits", "default,gaussian", "--seeds", "0", "--max-steps", "1"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("estimate: about ") and "for 2 run(s) (a few training steps" in err.splitlines()[0]
    assert "timed on this machine now)" in err.splitlines()[0]
    assert main(["compare", *TINY_ARGS, "--inits", "default", "--seeds", "0", "--max-steps", "1", "--quiet"]) == 0
    assert "estimate" not in capsys.readouterr().err  # --quiet: none, and no time spent on it


def test_a_compare_save_killed_mid_run_keeps_its_finished_runs_for_resume(tmp_path):
    """`compare --save` is a recorded job: each run is stored as it finishes, and killed with SIGKILL
    (its pid alone, as a crash or the OOM killer) it is listed as interrupted; resuming trains only the
    run it lacks, into the same comparison."""
    args = [arg if arg != "3" else "40" for arg in TINY_ARGS]  # --max-steps 40: seconds a run
    proc = subprocess.Popen([sys.executable, "-m", "convcov_core", "compare", *args, "--inits", "default,gaussian",
                             "--seeds", "0", "--save", "--quiet"], cwd=REPO, env={**os.environ, "CONVCOV_HOME":
                                                                                   str(tmp_path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore(tmp_path / "runs.db")
    try:
        wait_for(lambda: store.path.exists() and store.list(), "the first run stored", timeout=240, poll_s=0.05)
    finally:
        proc.kill()
        proc.wait()
    [job] = ComparisonJobs(store).interrupted()
    assert "(command line)" in job.record.label and [r.variant for r in job.finished] == ["default"]
    assert store.list_comparisons()[0].status == "interrupted"
    _, work = ComparisonJobs(store).resume(job.record.id)
    trained = []
    result = work(lambda event: trained.append(event.variant) and None)
    assert set(trained) == {"gaussian"} and result.id == job.record.comparison_id
    assert sorted(r.variant for r in store.list()) == ["default", "gaussian"]
    assert ComparisonJobs(store).interrupted() == [] and store.list_comparisons()[0].status == "ok"
