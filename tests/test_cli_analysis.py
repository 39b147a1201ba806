"""Command line, the analysis commands: learned, cnfa, frequency, covariance and sample files."""
import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from convcov_core import cnfa, covariance, examples, family_fits, learned_sets, model_pairs
from convcov_core.cli import main
from convcov_core.runs import RunStore
from helpers.runs import fake_run


def test_learned_reads_back_the_covariances_it_writes(tmp_path, capsys):
    covs = tmp_path / "covs.pt"
    assert main(["learned", "--kernel-size", "7", "--depth", "3", "--out", str(covs)]) == 0
    capsys.readouterr()
    assert main(["learned", "--covariances", str(covs)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("covs.pt (a covariance file): 3 depthwise layer(s), 7 x 7 filters")
    assert "layer 3" in out and "straight line through the fitted sigmas" in out
    assert main(["learned", "--covariances", str(tmp_path / "nope.npy")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_learned_prints_the_bundled_examples_fits_by_default(capsys):
    assert main(["learned"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the bundled example: convmixer-64/8 on mnist5k")
    first, last = learned_sets.fitted_schedule(learned_sets.layer_fits(examples.load_example().covariances))
    assert "blocks.7.0.fn.0" in out and f"straight line through the fitted sigmas: {first:.2f} -> {last:.2f}" in out


def test_learned_families_prints_every_familys_fit_and_the_best_per_layer(capsys):
    assert main(["learned", "--families"]) == 0
    out = capsys.readouterr().out
    rows = family_fits.family_fits(examples.load_example().covariances)
    assert "gaussian      laplace       matern32      matern52      rational-quadratic  best" in out
    line = [text for text in out.splitlines() if text.startswith("5  blocks.4.0.fn.0")][-1]  # the second table
    assert line.split()[-1] == rows[4].best.family and f"{rows[4].of('laplace').r:.3f}" in line
    assert out.rstrip().endswith("best fit by r, of 8 layer(s): laplace in 6, gaussian in 1, matern52 in 1; the "
                                 "gaussian's r is within 0.01 of the best in layer(s): 1, 2")


def test_learned_from_a_checkpoint_transfers_writes_and_saves_a_set(tmp_path, capsys):
    from safetensors.torch import save_file

    from helpers.files import tiny_convmixer_state

    _, state = tiny_convmixer_state(depth=3, k=5)
    save_file(state, tmp_path / "mine.safetensors")
    out = tmp_path / "covs.pt"
    assert main(["learned", "--checkpoint", str(tmp_path / "mine.safetensors"), "--kernel-size", "7",
                 "--depth", "4", "--out", str(out), "--save-set", "from-cli"]) == 0
    printed, err = capsys.readouterr()
    assert printed.startswith("mine.safetensors (convmixer-8/3, 5 × 5 filters): 3 depthwise layer(s)")
    assert "shape 4 x 49 x 49" in err and "covariance set 'from-cli'" in err
    assert torch.load(out, weights_only=True).shape == (4, 49, 49)
    assert learned_sets.CovarianceSetInfo("from-cli", 7, 4, "mine.safetensors (convmixer-8/3, 5 × 5 filters)") in \
        learned_sets.list_covariance_sets()


def test_learned_from_a_stored_run(tmp_path, capsys):
    from helpers.runs import fake_run

    db = tmp_path / "runs.db"
    run_id = RunStore(db).save(fake_run(k=5))
    assert main(["learned", "--run", str(run_id), "--db", str(db)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"run #{run_id}: convmixer-16/2 on mnist5k") and "note:" not in err


def test_learned_notes_a_run_whose_filters_were_wider_than_its_maps(tmp_path, capsys):
    from helpers.runs import fake_run

    db = tmp_path / "runs.db"
    run = fake_run(k=5)
    run.config = run.config.replace(patch_size=14)  # 2 x 2 maps on 28 x 28 digits: the central 3 x 3
    run_id = RunStore(db).save(run)
    assert main(["learned", "--run", str(run_id), "--db", str(db)]) == 0
    err = capsys.readouterr().err
    assert "note: This run's setup: 2 of 2 depthwise layers" in err and "central 3 × 3 weights of 5 × 5 filters" in err
    assert "This run's setup: 2 of 2" in err and "its filters, and their covariances, are the init" in err


def test_learned_refuses_a_malicious_checkpoint_in_one_line(tmp_path, capsys):
    from helpers.files import malicious_checkpoint

    marker = tmp_path / "pwned"
    (tmp_path / "evil.pt").write_bytes(malicious_checkpoint(marker))
    assert main(["learned", "--checkpoint", str(tmp_path / "evil.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not executed" in err and not marker.exists()


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".safetensors"])
def test_covariance_writes_the_closed_form(suffix, tmp_path, capsys):
    out = tmp_path / f"cov{suffix}"
    assert main(["covariance", "--kernel-size", "5", "--sigma", "1.5", "--out", str(out)]) == 0
    if suffix == ".npy":
        S = torch.from_numpy(np.load(out))
    elif suffix == ".pt":
        S = torch.load(out, weights_only=True)
    else:
        S = load_file(out)["covariance"]
    assert torch.allclose(S, covariance.gaussian(5, 1.5))
    tiled = tmp_path / "tiled.npy"
    assert main(["covariance", "--kernel-size", "5", "--sigma", "1.5", "--view", "tiled",
                 "--out", str(tiled)]) == 0
    assert torch.allclose(torch.from_numpy(np.load(tiled)), covariance.to_tiled(covariance.gaussian(5, 1.5)))


def test_sample_draws_filters_from_a_scheme_or_a_covariance_file(tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    for out in (a, b):
        assert main(["sample", "--kernel-size", "7", "--sigma", "2", "--n", "32", "--seed", "1",
                     "--out", str(out)]) == 0
    fa = np.load(a)
    assert fa.shape == (32, 7, 7) and np.array_equal(fa, np.load(b))
    cov = tmp_path / "cov.pt"
    assert main(["covariance", "--kernel-size", "5", "--sigma", "1", "--out", str(cov)]) == 0
    out = tmp_path / "f.safetensors"
    assert main(["sample", "--covariance", str(cov), "--n", "4000", "--variance", "1",
                 "--out", str(out)]) == 0
    filters = load_file(out)["filters"]
    assert filters.shape == (4000, 5, 5)
    emp = covariance.empirical(filters)
    assert torch.allclose(emp, covariance.gaussian(5, 1.0), atol=0.1)


TINY_CNN = ["--dataset", "noisy-bars", "--dataset-param", "n_train=64", "--dataset-param", "n_test=32",
            "--dataset-param", "image_size=12", "--dataset-param", "bar_size=5", "--layers", "2",
            "--width", "4", "--epochs", "1", "--batch-size", "32", "--max-steps", "2", "--images", "8"]


def test_cnfa_trains_a_small_cnn_prints_r_per_layer_and_saves_it(tmp_path, capsys):
    db, out = tmp_path / "runs.db", tmp_path / "cnfa.json"
    assert main(["cnfa", *TINY_CNN, "--save", "--db", str(db), "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("run #1: cnn-4,4 (5 x 5, then 3 x 3 filters), small normal init, trained here")
    assert "AGOP of all outputs on 8 test image(s)" in printed
    assert "block1.0  regular  4 x 1 x 5²" in printed and "block2.0  regular  4 x 4 x 3²" in printed
    assert "trained vs" in printed and "layer(s) at 0.9 or above after training" in printed
    doc = json.loads(out.read_text())
    assert [row["layer"] for row in doc["layers"]] == ["block1.0", "block2.0"]
    assert all(-1 <= row["r trained"] <= 1 for row in doc["layers"]) and doc["images"] == 8
    saved = RunStore(db).list()
    assert len(saved) == 1 and saved[0].has_weights  # the Feature Ansatz page can open it


def test_cnfa_of_a_stored_run_matches_the_pages_analysis(tmp_path, capsys):

    db = tmp_path / "runs.db"
    assert main(["cnfa", *TINY_CNN, "--save", "--db", str(db), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["cnfa", "--run", "1", "--db", str(db), "--images", "8", "--outputs", "predicted"]) == 0
    printed, err = capsys.readouterr()
    assert err.startswith("estimate: about ") and "for the AGOP of 8 images" in err
    run = RunStore(db).get(1)
    pair = model_pairs.pair_from_run(run)
    rows = cnfa.compare_cnfa(pair, cnfa.analysis_images(run.config, 8), outputs="predicted").table()
    lines = {line.split()[0]: line.split() for line in printed.splitlines()[3:-1]}
    for row in rows:  # the same numbers as the page computes for that run
        assert lines[row["layer"]][-3:-1] == [f"{row['r trained']:.3f}", f"{row['r at init']:.3f}"]
    assert printed.startswith("run #1: cnn-4,4") and "AGOP of predicted outputs" in printed


def test_cnfa_of_the_bundled_example_names_it(capsys):
    assert main(["cnfa", "--run", "example", "--images", "4"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("the bundled example: convmixer-64/8 (k = 9) on mnist5k, test accuracy 97.9%")
    assert "blocks.7.0.fn.0  depthwise  64 x 1 x 9²" in printed


def test_cnfa_refuses_a_run_without_weights_in_one_line(tmp_path, capsys):
    db, run = tmp_path / "runs.db", fake_run(k=5)
    run.state_dict = {}  # covariances only
    run_id = RunStore(db).save(run)
    assert main(["cnfa", "--run", str(run_id), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "saved no weights" in err


def test_frequency_of_the_closed_form_and_of_the_bundled_example(tmp_path, capsys):
    assert main(["frequency", "--n", "256"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("gaussian filters: 1 layer(s) of 9 x 9, spectra zero-padded to 64 x 64")
    assert "Gaussian σ = 2  9.00" in printed  # fills the window at 90%, whatever sigma
    assert "reference, PyTorch default (white noise) at k = 9: half-max frequency above 0.5" in printed
    out = tmp_path / "freq.json"
    assert main(["frequency", "--source", "trained", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("trained filters of the bundled example: 8 layer(s) of 9 x 9")
    assert "fitted sigma (r)  closed form's half-max at it" in printed and "blocks.7.0.fn.0" in printed
    doc = json.loads(out.read_text())
    half_max = [row["half-max frequency"] for row in doc["layers"]]
    assert half_max[-1] < half_max[0]  # the example's deep layers are smoother than its first
    assert len(doc["radial_frequency"]) == len(doc["profiles"]["blocks.0.0.fn.0"]) == 33
    assert doc["radial_frequency"][-1] == 0.5


def test_frequency_of_a_users_checkpoint(tmp_path, capsys):
    from safetensors.torch import save_file

    from convcov_core import models

    torch.manual_seed(3)
    net = models.build_model("convmixer-8/2", num_classes=10, in_chans=3, kernel_size=7, patch_size=2)
    save_file(net.state_dict(), tmp_path / "net.safetensors")
    assert main(["frequency", "--source", "trained", "--checkpoint", str(tmp_path / "net.safetensors")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("trained filters of net.safetensors: 2 layer(s) of 7 x 7")
    assert "fitted sigma (r)" in printed and "blocks.1.0.fn.0" in printed
    assert main(["frequency", "--source", "learned", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("argv,words", [
    (["frequency", "--energy", "1.5"], "energy must be a share in (0, 1]"),
    (["frequency", "--kernel-size", "8"], "odd"),
    (["frequency", "--source", "trained", "--run", "99"], "99"),
    (["cnfa", "--layers", "0"], "layers must be a whole number >= 1"),
    (["cnfa", "--images", "0", "--run", "example"], "number of images must be a whole number >= 1"),
])
def test_analysis_commands_report_bad_input_in_one_line(argv, words, capsys, tmp_path):
    assert main([*argv, "--db", str(tmp_path / "runs.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("convcov: error: ") and words in err, err


def test_cnfa_of_a_users_checkpoint_on_a_dataset_with_its_channels(tmp_path, capsys):
    from safetensors.torch import save_file

    from convcov_core import models

    torch.manual_seed(3)
    model = models.build_model("convmixer-8/2", num_classes=10, in_chans=3, kernel_size=5, patch_size=2)
    save_file(model.state_dict(), tmp_path / "rgb.safetensors")
    assert main(["cnfa", "--checkpoint", str(tmp_path / "rgb.safetensors"), "--dataset", "textures",
                 "--images", "4"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("rgb.safetensors: convmixer-8/2 (k = 5), against the same architecture at "
                              "PyTorch's default init (seed 0); AGOP of all outputs on 4 test image(s) of "
                              "textures")
    assert re.search(r"\nstem\.0 +regular", printed)
    assert re.search(r"\nblocks\.1\.0\.fn\.0 +depthwise +8 x 1 x 5²", printed)
    assert main(["cnfa", "--checkpoint", str(tmp_path / "rgb.safetensors")]) == 2
    assert "takes 3-channel images but mnist5k has 1-channel ones" in capsys.readouterr().err
    assert main(["cnfa", "--checkpoint", "x.pt", "--run", "1"]) == 2  # one source at a time
