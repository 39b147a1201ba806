"""NIFF-ConvMixer against the k x k ConvMixer on mnist5k (issue 24, part 2; seed 002): test accuracy
paired over seeds (stats.paired_verdict, NIFF - k x k), and per layer how large the NIFF filters
really are and whether the covariances of their k x k crops fit the closed form as well as the
k x k filters' do. NIFF comes with the seed's small MLP (2-8-4-C, "-niff") and its big one
(2-16-128-32-C, "-niff-big").

    python reports/niff/niff_vs_kxk.py run [--out reports/niff/mnist5k.jsonl]   # one line per finished run
    python reports/niff/niff_vs_kxk.py summary                                 # writes summary.md

`run` skips runs already in the file, so it can be stopped and resumed. Setups: ConvMixer-64/4 with
k = 9 and ConvMixer-64/8 with k = 15 (the Training Lab's default), patch 2 (14 x 14 maps), one
epoch, and ConvMixer-64/4 with k = 9 for three epochs (does NIFF catch up?); PyTorch's default
init, seeds 0-2; the NIFF variants read their filters in the same k x k window.
Per layer and run: the fitted sigma and Pearson r of the covariance the run kept
(learned_sets.layer_fits), its rank (a NIFF layer's is at most 2 h + 1 for h last hidden
features: 9 and 65) and the share of its trace on the centre pixel (1 / k^2 for the closed form);
each filter's effective size (spectra.effective_size, 90% of the energy) on the whole 14 x 14 map
for NIFF (trained, and at init as the control) and in the k x k window for the k x k ConvMixer;
the share of the NIFF filters' energy outside the window.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from convcov_core import learned_sets, models, niff, spectra, stats, train
from convcov_core.train.model import final_filters, niff_spatial_filters

HERE = Path(__file__).resolve().parent
SEEDS = (0, 1, 2)
BASE = dict(dataset="mnist5k", patch_size=2, epochs=1, init="default", keep_state_dict=True)
SETUPS = {"64/4, k = 9": dict(model="convmixer-64/4", kernel_size=9),
          "64/8, k = 15": dict(model="convmixer-64/8", kernel_size=15),
          "64/4, k = 9, 3 epochs": dict(model="convmixer-64/4", kernel_size=9, epochs=3)}
VARIANTS = {"kxk": "", "niff": "-niff", "niff-big": "-niff-big"}  # name -> model spec suffix
NIFF_VARIANTS = ("niff", "niff-big")
RANK_RTOL = 1e-5  # float32 filters: singular values below this share of the largest are noise


def config_for(setup: str, variant: str, seed: int) -> train.TrainConfig:
    spec = SETUPS[setup]
    return train.TrainConfig(**{**BASE, **spec, "model": spec["model"] + VARIANTS[variant], "seed": seed})


def whole_map_sizes(filters: torch.Tensor) -> torch.Tensor:
    """Effective sizes of C x n x n NIFF filters in the smallest odd window that holds all of them."""
    n = filters.shape[-1]
    return spectra.effective_size(niff.centre_window(filters, n + 1 - n % 2))


def centre_share(S: torch.Tensor) -> float:
    """Share of a k^2 x k^2 covariance's trace on the centre pixel of the k x k window."""
    return float(S.diagonal()[S.shape[0] // 2] / S.diagonal().sum())


def mean_size(sizes: torch.Tensor) -> float:
    return float(sizes.double().mean())


def layer_stats(result: train.RunResult) -> list[dict]:
    """Per layer: fitted sigma and r, rank, centre share of the variance; mean effective size (NIFF: whole
    map, trained and at init)."""
    config = result.config
    *_, info = train.load_training_data(config)
    trained = train.build_model_for(config, info)
    models.load_checkpoint_into(trained, result.state_dict)
    fits = learned_sets.layer_fits(result.covariances)
    rows = [{"sigma": f["sigma"], "r": f["r"], "rank": int(torch.linalg.matrix_rank(S, rtol=RANK_RTOL)),
             "centre": centre_share(S)} for f, S in zip(fits, result.covariances)]
    if niff.niff_layers(trained):
        _, full = niff_spatial_filters(trained, config)
        _, at_init = niff_spatial_filters(train.build_model_for(config, info), config)
        for row, f, f0, share in zip(rows, full, at_init, result.final["niff_energy_outside"]):
            row.update(size=mean_size(whole_map_sizes(f)), size_init=mean_size(whole_map_sizes(f0)),
                       outside=share, outside_init=niff.energy_outside(f0, config.kernel_size))
    else:
        for row, w in zip(rows, final_filters(trained, config)[1]):
            row.update(size=mean_size(spectra.effective_size(w)))
    return rows


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run(path: Path) -> None:
    done = {(r["setup"], r["variant"], r["seed"]) for r in read(path)}
    with path.open("a") as out:
        for setup in SETUPS:
            for seed in SEEDS:
                for variant in VARIANTS:
                    if (setup, variant, seed) in done:
                        continue
                    result = train.train(config_for(setup, variant, seed))
                    layers = layer_stats(result) if result.status == "ok" else []
                    out.write(json.dumps({"setup": setup, "variant": variant, "seed": seed, "status": result.status,
                                          "test_acc": result.final["test_acc"], "wall": result.wall_time,
                                          "layers": layers}) + "\n")
                    out.flush()
                    print(f"{setup} {variant} seed {seed}: {result.message} ({result.wall_time:.0f} s)", flush=True)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def complete(by: dict) -> list[str]:
    """The setups every variant has finished for every seed."""
    return [setup for setup in SETUPS if all(set(SEEDS) <= set(by.get((setup, v), {})) for v in VARIANTS)]


def accuracy_table(by: dict) -> list[str]:
    """Mean ± std per variant, and each NIFF variant's paired difference to the k x k ConvMixer."""
    lines = ["| setup | " + " | ".join(VARIANTS) + " | " + " | ".join(f"{v} - kxk [95% interval]: winner"
                                                           for v in NIFF_VARIANTS) + " | s per run |",
             "|---" * (3 + 2 * len(NIFF_VARIANTS)) + "|"]
    for setup in complete(by):
        acc = {v: [by[setup, v][s]["test_acc"] for s in SEEDS] for v in VARIANTS}
        cells = [f"{stats.mean_interval(acc[v]).mean:.1f} ± {stats.mean_interval(acc[v]).std:.1f}" for v in VARIANTS]
        for v in NIFF_VARIANTS:
            verdict = stats.paired_verdict(acc[v], acc["kxk"])
            winner = {"a": v, "b": "kxk"}.get(verdict.winner, "none")
            cells.append(f"{verdict.mean:+.1f} [{verdict.low:+.1f}, {verdict.high:+.1f}]: {winner}")
        walls = ", ".join(f"{_mean(by[setup, v][s]['wall'] for s in SEEDS):.0f}" for v in VARIANTS)
        lines.append(f"| {setup} | " + " | ".join(cells) + f" | {walls} |")
    return lines


def layer_means(by: dict, setup: str, variant: str, layer: int) -> dict:
    runs = [by[setup, variant][s]["layers"][layer] for s in SEEDS]
    return {key: _mean(r[key] for r in runs) for key in runs[0]}


def layer_table(by: dict, setup: str) -> list[str]:
    """Per layer: every variant's fitted σ, r and rank, effective sizes, NIFF energy outside the window."""
    k = SETUPS[setup]["kernel_size"]
    lines = ["| layer | " + " | ".join(f"{v}: σ, r, rank, centre" for v in VARIANTS) + " | kxk: effective size | "
             + " | ".join(f"{v}: effective size (at init) | {v}: energy outside {k} x {k} (at init)"
                          for v in NIFF_VARIANTS) + " |", "|---" * (2 + len(VARIANTS) + 2 * len(NIFF_VARIANTS)) + "|"]
    for layer in range(len(by[setup, "kxk"][SEEDS[0]]["layers"])):
        m = {v: layer_means(by, setup, v, layer) for v in VARIANTS}
        cells = [f"{m[v]['sigma']:.2f}, {m[v]['r']:.2f}, {m[v]['rank']:.0f}, {100 * m[v]['centre']:.0f} %"
                 for v in VARIANTS]
        cells.append(f"{m['kxk']['size']:.1f}")
        for v in NIFF_VARIANTS:  # max(0, ...): lines written before energy_outside was exact hold -1e-16 for 0
            cells += [f"{m[v]['size']:.1f} ({m[v]['size_init']:.1f})",
                      f"{100 * max(m[v]['outside'], 0):.1f} % ({100 * max(m[v]['outside_init'], 0):.1f} %)"]
        lines.append(f"| {layer + 1} | " + " | ".join(cells) + " |")
    return lines


def summary(rows: list[dict]) -> str:
    """The Markdown summary: accuracies with the paired verdict, then each setup's layers (means over seeds)."""
    by = {}
    for r in rows:
        by.setdefault((r["setup"], r["variant"]), {})[r["seed"]] = r
    lines = ["# NIFF-ConvMixer vs k x k ConvMixer on mnist5k", "",
             "Written by `python reports/niff/niff_vs_kxk.py summary` from the runs of `... run` (see its docstring).",
             f"Seeds {', '.join(map(str, SEEDS))}; test accuracy (%) with settled BatchNorm statistics.", "",
             *accuracy_table(by)]
    for setup in complete(by):
        lines += ["", f"## ConvMixer-{setup}: per layer (means over seeds)", "", *layer_table(by, setup)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "summary"))
    parser.add_argument("--out", type=Path, default=HERE / "mnist5k.jsonl")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.out)
    else:
        (HERE / "summary.md").write_text(summary(read(args.out)))
        print((HERE / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
