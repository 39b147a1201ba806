"""The `rfm` command: seed 001's Figure 5 on convcov's data, the base Laplace kernel, ConvRFM, Deep
ConvRFM and the Feature Ansatz CNN side by side over noise levels and seeds (rfm.noise_sweep)."""

from __future__ import annotations

import sys
import time

from .. import rfm
from ..model_pairs import NOISY_DATASETS
from ..text import duration, number
from .args import QUIET, add_command, dataset_param, described, float_list, int_list, json_path, number_in, span
from .output import format_table, print_estimate, write_json


def _setup(args) -> rfm.Setup:
    return rfm.Setup(dataset=args.dataset, n_train=args.n_train, n_test=args.n_test, patch_size=args.patch_size,
                     iterations=args.iterations, layers=args.layers, filters=args.filters, bandwidth=args.bandwidth,
                     agop_images=args.agop_images, cnn_epochs=args.cnn_epochs, dataset_params=dict(args.dataset_param))


def _progress(total: int):
    """A callback printing each model as it starts, with its number and the time so far, on stderr."""
    started, count = time.perf_counter(), [0]

    def report(what: str) -> None:
        count[0] += 1
        elapsed = duration(time.perf_counter() - started, compact=True)
        print(f"[{count[0]}/{total}] {what} ({elapsed})", file=sys.stderr, flush=True)

    return report


def _cell(row: dict) -> str:
    """'61.2 [55.0, 67.4]': mean test accuracy and its 95% interval over seeds."""
    if row["low"] is None:
        return number(row["mean"], ".1f")
    return f"{row['mean']:.1f} [{row['low']:.1f}, {row['high']:.1f}]"


def format_sweep(sweep: rfm.NoiseSweep) -> str:
    """The sweep as text: setup line, mean test accuracy [95% interval] per noise level and model, the
    paired verdicts per noise level and the trend of the gain with noise."""
    s = sweep.setup
    patches = " then ".join(f"{q} x {q}" for q in dict.fromkeys(s.patch_sizes))
    lines = [f"{s.dataset}: {s.n_train} train / {s.n_test} test images, {patches} patches, "
             f"{s.iterations} ConvRFM iteration(s), {s.layers} layer(s) of {s.filters} filters, seeds "
             f"{','.join(map(str, sweep.seeds))}; test accuracy % (mean [95% interval])", ""]
    summary = sweep.summary()
    rows = [[f"{noise:g}"] + [_cell(r) for r in summary if r["noise"] == noise] for noise in sweep.noises]
    lines += [format_table(["noise", *rfm.MODELS], rows), ""]
    for v in sweep.verdicts():
        lines.append(f"noise {v['noise']:g}: {v['verdict'].sentence(v['a'], v['b'])}")
    if len(sweep.noises) > 1:
        high, low = max(sweep.noises), min(sweep.noises)
        for model in ("ConvRFM", "Deep ConvRFM"):
            gain = f"{model} - base kernel at noise"
            lines.append(f"trend: {sweep.trend(model).sentence(f'{gain} {high:g}', f'{gain} {low:g}')}")
    return "\n".join(lines)


def cmd_rfm(args) -> int:
    setup = _setup(args)
    if not args.quiet:
        print_estimate(rfm.estimate_seconds(setup, args.noise, args.seeds),
                       f"{len(args.noise)} noise level(s) x {len(args.seeds)} seed(s) x {len(rfm.MODELS)} models",
                       "the kernel models on fewer training images, extrapolated, and a few CNN steps")
    progress = None if args.quiet else _progress(len(args.noise) * len(args.seeds) * len(rfm.MODELS))
    sweep = rfm.noise_sweep(setup, args.noise, args.seeds, progress)
    print(format_sweep(sweep))
    if args.json:
        write_json(args.json, sweep.to_dict())
    return 0


#: The bandwidths the command takes: at 0.001 and 1e-6 "M is zero" (the kernel underflowed), at 1e8
#: every model guessed alike (noisy-bars, 40 images, 2026-12-07); 0.01 and 1e5 still learned.
BANDWIDTHS = (0.01, 1000.0)

RFM_OPTIONS = (
    ("--dataset", dict(choices=NOISY_DATASETS, default="noisy-bars", help="a local-signal task in noise")),
    ("--noise", dict(type=float_list, default=[0.25, 0.5, 1.0], metavar="LIST",
                     help="background noise std levels, e.g. 0.25,0.5,1")),
    ("--seeds", dict(type=int_list, default=[0, 1, 2],
                     help="seeds (data draw, split, filters, CNN), e.g. 0,1,2 or 0-4")),
    ("--n-train", dict(type=int, default=1000, help="training images (a share is held out to choose ridge and M)")),
    ("--n-test", dict(type=int, default=500, help="test images")),
    ("--patch-size", dict(type=int, default=None,
                          help="q: every layer's q x q patches and CNN kernel (odd; default 5 x 5, then 3 x 3)")),
    ("--iterations", dict(type=int, default=3, help="T: ConvRFM's AGOP updates of M")),
    ("--layers", dict(type=int, default=2, help="layers of Deep ConvRFM and of the CNN")),
    ("--filters", dict(type=int, default=64, help="filters per layer of Deep ConvRFM and of the CNN")),
    ("--bandwidth", dict(type=number_in(*BANDWIDTHS), default=rfm.BANDWIDTH,
                         help=f"Laplace bandwidth L as a multiple of the median patch distance, {span(*BANDWIDTHS)} "
                              "(below, exp(-1/L) of two patches at that distance underflows and the gradients "
                              "vanish; above, the kernel is nearly constant)")),
    ("--agop-images", dict(type=int, default=400, help="training images the AGOP averages over")),
    ("--cnn-epochs", dict(type=int, default=30, help="training epochs of the CNN")),
    dataset_param("dataset option, e.g. image_size=20 for noisy-bars (repeatable)"),
    json_path("also write every model's test accuracy per noise level and seed, and the verdicts, as JSON"),
    QUIET,
)

RFM_SIZE = ("Every noise level and seed fits the base kernel, ConvRFM and Deep ConvRFM and trains the CNN. At the "
            "defaults that is 3 noise levels x 3 seeds x 4 models on 1,000 training and 500 test images, the CNN 30 "
            "epochs (28 min on a 2-core CPU, docs/results.md). The command prints its own estimate, timed on this "
            "machine, before it starts (not with --quiet).")

COMMANDS = {
    "rfm": ("ConvRFM and Deep ConvRFM vs the base kernel and the CNN over noise levels (seed 001's Figure 5)",
            cmd_rfm, described(RFM_SIZE), RFM_OPTIONS),
}


def add_parsers(sub, names=None) -> None:
    """Register the sub-parsers of the commands `names` (default: all of this module's, in order)."""
    for name in COMMANDS if names is None else names:
        add_command(sub, name, *COMMANDS[name])
