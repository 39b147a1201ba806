"""Where does the covariance init help on the embedded data? A grid of ConvMixer runs on mnist5k,
each init trained and frozen, over seeds, judged by convcov_core.stats.paired_verdict on test
accuracy with settled BatchNorm statistics (the raw eval-mode accuracy is kept beside it).

    python reports/init_scan/scan.py run [--out reports/init_scan/mnist5k.jsonl]   # about an hour on 2 cores
    python reports/init_scan/scan.py summary                                       # writes summary.md

`run` appends one JSON line per finished run and skips runs already in the file, so it can be
stopped and resumed. The grid: ConvMixer-64/8 (p = 2) with k = 9, 15, 25 for one epoch and k = 15
for three; variants default, gaussian (filters trained) and default-frozen, gaussian-frozen;
seeds 0-4.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from convcov_core import compare, stats, train

HERE = Path(__file__).resolve().parent
SEEDS = (0, 1, 2, 3, 4)
BASE = dict(dataset="mnist5k", model="convmixer-64/8", kernel_size=15, patch_size=2, epochs=1)
SETUPS = {"k15-e1": {}, "k15-e3": {"epochs": 3}, "k9-e1": {"kernel_size": 9}, "k25-e1": {"kernel_size": 25}}
VARIANTS = {"default": dict(init="default", freeze_filters=False),
            "gaussian": dict(init="gaussian", freeze_filters=False),
            "default-frozen": dict(init="default", freeze_filters=True),
            "gaussian-frozen": dict(init="gaussian", freeze_filters=True)}
PAIRS = (("gaussian", "default", "trained: gaussian - default"),
         ("gaussian-frozen", "default-frozen", "frozen: gaussian - default"),
         ("gaussian-frozen", "default", "paper's claim 2: frozen gaussian - trained default"))


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run(path: Path) -> None:
    done = {(r["setup"], r["variant"], r["seed"]) for r in read(path)}
    with path.open("a") as out:
        for setup, overrides in SETUPS.items():
            for seed in SEEDS:
                for variant, init in VARIANTS.items():
                    if (setup, variant, seed) in done:
                        continue
                    result = train.train(train.TrainConfig(**{**BASE, **overrides, **init, "seed": seed}))
                    out.write(json.dumps({"setup": setup, "variant": variant, "seed": seed,
                                          "status": result.status, **result.final,
                                          "wall": result.wall_time}) + "\n")
                    out.flush()


def summary(rows: list[dict]) -> str:
    """The Markdown summary: accuracy per variant, then each pair's verdict, per setup."""
    by = {}
    for r in rows:
        by.setdefault((r["setup"], r["variant"]), {})[r["seed"]] = r
    lines = ["| setup | metric | " + " | ".join(VARIANTS) + " | " + " | ".join(p[2] for p in PAIRS) + " |",
             "|---|---|" + "---|" * (len(VARIANTS) + len(PAIRS))]
    for setup in SETUPS:
        for metric in compare.METRICS:
            cells = []
            for variant in VARIANTS:
                iv = stats.mean_interval(r[metric] for r in by.get((setup, variant), {}).values())
                cells.append("–" if iv.mean is None else f"{iv.mean:.1f} ± {iv.std or 0:.1f}")
            for a, b, _ in PAIRS:
                seeds = sorted(set(by.get((setup, a), {})) & set(by.get((setup, b), {})))
                v = stats.paired_verdict([by[(setup, a)][s][metric] for s in seeds],
                                         [by[(setup, b)][s][metric] for s in seeds])
                winner = {"a": a, "b": b}.get(v.winner, "no clear winner")
                cells.append("–" if v.low is None else f"{v.mean:+.1f} [{v.low:+.1f}, {v.high:+.1f}]: {winner}")
            lines.append(f"| {setup} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "summary"])
    parser.add_argument("--out", type=Path, default=HERE / "mnist5k.jsonl")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.out)
    text = ("# Init scan on mnist5k\n\nConvMixer-64/8, p = 2, seeds 0-4; test accuracy in % (mean ± std over "
            "seeds), then each pair's mean paired difference with its 95% interval and the verdict of "
            "convcov_core.stats.paired_verdict. test_acc: BatchNorm statistics recomputed on training "
            "images after the last step (the headline); test_acc_raw: as training left them. Produced by "
            "`python reports/init_scan/scan.py summary` from the runs in mnist5k.jsonl.\n\n" + summary(read(args.out)))
    (HERE / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
