"""Command line, `rfm`: the four models over noise levels and seeds, the JSON file, and bad input."""

import json

import pytest

from convcov_core import rfm
from convcov_core.cli import main

TINY = ["--n-train", "30", "--n-test", "20", "--dataset-param", "image_size=8", "--dataset-param", "bar_size=3",
        "--iterations", "1", "--filters", "4", "--agop-images", "10", "--cnn-epochs", "1"]


def test_rfm_prints_every_model_per_noise_level_and_writes_each_seed_to_json(tmp_path, capsys):
    out = tmp_path / "rfm.json"
    assert main(["rfm", *TINY, "--noise", "0.2,1", "--seeds", "0,1", "--json", str(out)]) == 0
    printed, err = capsys.readouterr()
    assert printed.startswith("noisy-bars: 30 train / 20 test images, 5 x 5 then 3 x 3 patches, 1 ConvRFM")
    header = next(line for line in printed.splitlines() if line.startswith("noise "))
    assert all(model in header for model in rfm.MODELS)
    assert "noise 0.2: ConvRFM vs base kernel" in printed or "noise 0.2: ConvRFM beat" in printed \
        or "noise 0.2: base kernel beat ConvRFM" in printed
    assert "trend: " in printed
    assert "[1/16] noise 0.2, seed 0: base kernel" in err and "[16/16] noise 1, seed 1: CNN" in err
    assert err.startswith("estimate: about ") and "for 2 noise level(s) x 2 seed(s) x 4 models" in err.splitlines()[0]
    document = json.loads(out.read_text())
    rows = {(r["noise"], r["seed"], r["model"]): r["test_acc"] for r in document["rows"]}
    assert set(rows) == {(n, s, m) for n in (0.2, 1.0) for s in (0, 1) for m in rfm.MODELS}
    assert all(0 <= acc <= 100 for acc in rows.values())
    assert {(v["a"], v["b"]) for v in document["verdicts"]} == set(rfm.experiment.CONTRASTS)
    assert document["setup"]["filters"] == 4 and set(document["trend"]) == {"ConvRFM", "Deep ConvRFM"}


@pytest.mark.parametrize("args, message", [
    (["--noise", "lots"], "expected numbers like 0.5,1,1.5"),
    (["--dataset", "mnist5k"], "invalid choice"),
    (["--patch-size", "4"], "patch size must be odd"),
    (["--layers", "0"], "layers must be a whole number >= 1"),
    (["--bandwidth", "0"], "argument --bandwidth: expected a number >= 0.01 and <= 1000, got '0'"),
    (["--agop-images", "0"], "agop_images must be a whole number >= 1"),
])
def test_bad_input_exits_2_with_one_line(args, message, capsys):
    assert main(["rfm", *TINY, "--seeds", "0", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
