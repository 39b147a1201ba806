"""The analysis commands: `learned` (a trained network's learned covariances), `cnfa` (the Feature
Ansatz check), `frequency` (filters in frequency), `covariance` and `sample` (a closed-form
covariance, filters drawn from an init) and `download` (a torchvision dataset), with their sub-parsers."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

from .. import (
    agop,
    checkpoints,
    cnfa,
    covariance,
    data,
    family_fits,
    frequency,
    init,
    learned_sets,
    model_pairs,
    paths,
    pretrained,
    reach,
    settings,
    spectra,
    train,
)
from ..matrix_files import load_matrix, save_tensor
from ..text import duration, number
from .args import (
    DB,
    OUT_FILE,
    QUIET,
    SEED,
    Later,
    add_arch,
    add_command,
    dataset_param,
    exclusive,
    json_path,
    number_in,
    run_ref,
    setting_option,
)
from .output import TerminalProgress, format_table, print_estimate, write_json
from .sources import covariances_from_file, run_or_example, writable_store

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def cmd_covariance(args) -> int:
    S = covariance.closed_form(args.family, args.kernel_size, args.sigma, alpha=args.alpha)
    if args.view == "tiled":
        S = covariance.to_tiled(S)
    path = save_tensor(S, args.out, "covariance")
    print(f"wrote {args.view} {args.family} covariance ({S.shape[0]} x {S.shape[1]}, k={args.kernel_size}, "
          f"sigma={args.sigma:g}) to {path}", file=sys.stderr)
    return 0


def cmd_sample(args) -> int:
    generator = torch.Generator().manual_seed(args.seed)
    variance = args.variance if args.variance is not None else "default"
    if args.covariance is not None:
        S = covariance.validate_covariance(load_matrix(args.covariance))
        k = covariance.kernel_size_of(S) if args.kernel_size is None else args.kernel_size
        filters = init.sample_scheme(init.LEARNED, k, args.n, covariance=S, variance=variance,
                                     generator=generator)
        source = f"covariance {args.covariance}"
    else:
        k = 9 if args.kernel_size is None else args.kernel_size
        filters = init.sample_scheme(args.scheme, k, args.n, sigma=args.sigma, variance=variance,
                                     generator=generator)
        source = f"scheme {args.scheme}"
    path = save_tensor(filters, args.out, "filters")
    print(f"wrote {args.n} filters {k}x{k} from {source} to {path}", file=sys.stderr)
    return 0


def _learned_set(args):
    """The LearnedSet that `learned`'s --run / --checkpoint / --covariances / --timm names (the bundled example
    by default), with a note on stderr when a run's filters were wider than its feature maps could use."""
    if (args.pretrained or args.weights is not None) and args.timm is None:
        raise ValueError("--pretrained and --weights go with --timm NAME (a pretrained timm model)")
    if args.timm is not None:
        if not args.pretrained:
            raise ValueError(f"--timm {args.timm} needs --pretrained: the learned covariances are those of "
                             "timm's pretrained weights")
        return pretrained.learned_from_pretrained(args.timm, args.weights)
    if args.checkpoint is not None:
        state = checkpoints.load_state_dict(args.checkpoint, max_bytes=settings.max_checkpoint_bytes())
        return learned_sets.learned_from_state_dict(state, args.arch, Path(args.checkpoint).name)
    if args.covariances is not None:
        path = Path(args.covariances)
        return learned_sets.learned_from_file_covariances(covariances_from_file(path), path.name)
    run = run_or_example(args, args.run)
    if (warning := reach.run_reach_warning(run)) is not None:
        print(f"convcov: note: {warning}", file=sys.stderr)
    return learned_sets.learned_from_run(run, name="the bundled example" if args.run is None else None)


def cmd_learned(args) -> int:
    learned = _learned_set(args)
    fits = learned_sets.layer_fits(learned.covariances)
    print(f"{learned.source}: {learned.depth} depthwise layer(s), {learned.kernel_size} x "
          f"{learned.kernel_size} filters")
    print(format_table(["#", "layer", "fitted sigma (px)", "fit r"],
                       [[f["layer"], name, f"{f['sigma']:.2f}", f"{f['r']:.3f}"]
                        for f, name in zip(fits, learned.layer_names)]))
    first, last = learned_sets.fitted_schedule(fits)
    print(f"straight line through the fitted sigmas: {first:.2f} -> {last:.2f} "
          f"(compare --sigma-first {first:.2f} --sigma-last {last:.2f} imitates it)")
    if args.families:
        _print_families(family_fits.family_fits(learned.covariances), learned.layer_names)
    covariances = learned.covariances
    k = learned.kernel_size if args.kernel_size is None else args.kernel_size
    depth = learned.depth if args.depth is None else args.depth
    if (k, depth) != (learned.kernel_size, learned.depth):
        covariances = covariance.transfer(covariances, k, depth)
    if args.out:
        path = save_tensor(torch.stack(covariances), args.out, "covariances")
        print(f"wrote {depth} covariance(s) of {k} x {k} filters, shape {depth} x {k * k} x {k * k}, "
              f"to {path}", file=sys.stderr)
    if args.save_set:
        path = learned_sets.save_covariance_set(args.save_set, covariances, source=learned.source)
        print(f"saved covariance set {args.save_set!r} ({k} x {k}, {depth} layers) to {path}; the "
              f"Training Lab offers it for the learned init, and `compare --learned-from set:{path.stem}` "
              "uses it", file=sys.stderr)
    return 0


def _print_families(rows: list, names: list) -> None:
    """`learned --families`: every family's r (sigma) per layer, the best, and how often each is best."""
    print(f"\nclosed-form families per layer: Pearson r (fitted sigma, px); best = highest r "
          f"(differences under {family_fits.CLOSE_R:g} are ties)")
    print(format_table(["#", "layer", *covariance.FAMILIES, "best"],
                       [[row.layer, name, *(f"{f.r:.3f} ({f.sigma:.2f})" for f in row.fits),
                         row.best.family if row.best else "-"] for row, name in zip(rows, names)]))
    counts = [f"{family} in {len(layers)}" for family, layers in family_fits.best_layers(rows).items()]
    close = [str(row.layer) for row in rows if row.gaussian_gap < family_fits.CLOSE_R]
    print(f"best fit by r, of {len(rows)} layer(s): {', '.join(counts) or 'none'}; the gaussian's r is within "
          f"{family_fits.CLOSE_R:g} of the best in layer(s): {', '.join(close) or 'none'}")


def _cnfa_pair(args) -> model_pairs.ModelPair:
    """The checkpoint or stored run (or the example) named, else a small CNN trained here (saved
    on --save), after its estimated time unless --quiet."""
    if args.checkpoint is not None:
        state = checkpoints.load_state_dict(args.checkpoint, max_bytes=settings.max_checkpoint_bytes())
        return model_pairs.pair_from_state_dict(state, args.arch, Path(args.checkpoint).name, args.dataset)
    if args.run is not None:
        return model_pairs.pair_from_run(run_or_example(args, args.run),
                                name="the bundled example" if args.run == "example" else None)
    config = model_pairs.cnn_config(args.dataset, noise=args.noise, layers=args.layers, width=args.width,
                           kernel_size=args.kernel_size, epochs=args.epochs, batch_size=args.batch_size,
                           lr=args.lr, seed=args.seed, max_steps=args.max_steps,
                           dataset_params=dict(args.dataset_param)).replace(precision=args.precision)
    small = args.init == "small"
    run_store = writable_store(args) if args.save else None  # a read-only store refuses before anything runs
    if not args.quiet:
        agop = cnfa.estimate_seconds(model_pairs.initial_cnn(config, small), cnfa.analysis_images(config, args.images),
                                     outputs=args.outputs)
        print_estimate(train.estimate_time(config) + agop, f"training the CNN and the AGOP of {args.images} images",
                       "a few training steps and the AGOP of a few images")
    progress = None if args.quiet else TerminalProgress()
    if run_store is not None:
        return model_pairs.train_cnn_and_save(config, progress, small_init=small, store=run_store)
    return model_pairs.train_cnn(config, progress, small_init=small)


def cmd_cnfa(args) -> int:
    started = time.perf_counter()
    pair = _cnfa_pair(args)
    images = cnfa.analysis_images(pair.config, args.images)
    if not args.quiet and (args.checkpoint is not None or args.run is not None):
        print_estimate(cnfa.estimate_seconds(pair.initial, images, outputs=args.outputs),
                       f"the AGOP of {len(images)} images", "the AGOP of a few images")
    comparison = cnfa.compare_cnfa(pair, images, outputs=args.outputs)
    table = comparison.table()
    accuracy = "" if pair.test_acc is None else f", test accuracy {pair.test_acc:.1f}%"
    print(f"{pair.label}{accuracy}; AGOP of {args.outputs} outputs on {comparison.n_images} test "
          f"image(s) of {model_pairs.describe_dataset(pair.config)}")
    print(format_table(["layer", "kind", "filters", "r trained", "r at init", "r(CNFM init, trained)"],
                       [[r["layer"], r["kind"], r["filters"], number(r["r trained"], ".3f", "nan"),
                         number(r["r at init"], ".3f", "nan"),
                         number(r["r(CNFM init, CNFM trained)"], ".3f", "nan")] for r in table]))
    trained = [r["r trained"] for r in table if math.isfinite(r["r trained"])]
    initial = [r["r at init"] for r in table if math.isfinite(r["r at init"])]
    if trained and initial:
        print(f"mean r {sum(trained) / len(trained):.3f} trained vs {sum(initial) / len(initial):.3f} "
              f"at init; {sum(r >= 0.9 for r in trained)} of {len(trained)} layer(s) at 0.9 or above "
              f"after training ({duration(time.perf_counter() - started, compact=True)})")
    if args.json:
        write_json(args.json, {"model": pair.label, "test_acc": pair.test_acc, "images": comparison.n_images,
                               "outputs": args.outputs, "layers": table})
    return 0


def _frequency_rows(view, table, seed) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the frequency table; with the closed form at each layer's fitted sigma when
    the view has fits (as smooth as the layer or not)."""
    s = view.summary
    header = ["layer", "mean eff. size", "10-90%", "at full size", "half-max freq (cycles/px)"]
    rows = [[r["layer"], f"{r['mean effective size']:.2f}",
             f"{r['effective size 10%']:.0f}-{r['effective size 90%']:.0f}", f"{r['share at full size']:.0%}",
             number(r["half-max frequency"], ".3f", "above 0.5")] for r in table]
    if view.fitted:
        closed = frequency.sigma_curve(s.kernel_size, [r["fitted sigma"] for r in table], size=s.size,
                                seed=seed).half_max
        header += ["fitted sigma (r)", "closed form's half-max at it"]
        for row, r, half in zip(rows, table, closed):
            row += [f"{r['fitted sigma']:.2f} (r {r['fit r']:.2f})", number(half, ".3f", "above 0.5")]
    return header, rows


def cmd_frequency(args) -> int:
    run = None
    if args.source in frequency.NETWORK_SOURCES:
        if args.checkpoint is None:
            run = run_or_example(args, args.run)
        else:
            state = checkpoints.load_state_dict(args.checkpoint, max_bytes=settings.max_checkpoint_bytes())
            run = frequency.filters_from_state_dict(state, args.arch, Path(args.checkpoint).name)
    view = frequency.frequency_view(args.source, kernel_size=args.kernel_size, n=args.n, sigma=args.sigma,
                             run=run, seed=args.seed, energy=args.energy)
    s, table = view.summary, view.table()
    origin = ("" if run is None else f" of {run.id}" if args.checkpoint is not None
              else " of the bundled example" if args.run in (None, "example") else f" of run {args.run}")
    print(f"{args.source} filters{origin}: {len(s.names)} layer(s) of {s.kernel_size} x {s.kernel_size}, "
          f"spectra zero-padded to {s.size} x {s.size}, effective size at {s.energy:.0%} of the energy")
    print(format_table(*_frequency_rows(view, table, args.seed)))
    if view.white_noise is not None:
        reference = spectra.half_max_frequency(view.white_noise, s.size)
        print(f"reference, PyTorch default (white noise) at k = {s.kernel_size}: half-max frequency "
              f"{number(reference, '.3f', 'above 0.5 (never falls to half)')}")
    if args.json:
        freq = (s.radii.to(torch.float64) / s.size).tolist()
        write_json(args.json, {
            "source": args.source, "kernel_size": s.kernel_size, "energy": s.energy, "size": s.size,
            "layers": table, "radial_frequency": freq,
            "profiles": {name: p.tolist() for name, p in zip(s.names, s.profiles)},
            "white_noise_profile": None if view.white_noise is None else view.white_noise.tolist()})
    return 0


def cmd_download(args) -> int:
    root = Path(args.data_root).expanduser() if args.data_root else paths.data_root()
    if data.is_embedded(args.name):
        print(f"{args.name} ships with convcov; nothing to download")
        return 0
    train_x, _, test_x, _, info = data.load_dataset(args.name, root=root, download=True)
    print(f"{args.name}: {len(train_x)} training and {len(test_x)} test images in {root} ({info.source})")
    return 0


# ---------------------------------------------------------------------------------------------
# Sub-parsers
# ---------------------------------------------------------------------------------------------

CHECKPOINT_HELP = "safetensors or torch.save of a state dict; weights-only loading"
KERNEL_SIZE = number_in(1, whole=True)  # odd and at most the cap: checked once parsed (cli._check_kernel_size_cap)


def kernel_span() -> str:
    """The kernel sizes accepted, for the help: odd, 1 to settings.max_kernel_size()."""
    return f"odd, 1 to {settings.max_kernel_size()} ($CONVCOV_MAX_KERNEL)"


COVARIANCE_OPTIONS = (
    ("--kernel-size", dict(type=KERNEL_SIZE, required=True,
                           help=Later(lambda: f"k: the filters are k x k, the covariance k^2 x k^2; {kernel_span()}"))),
    ("--family", dict(choices=Later(lambda: list(covariance.FAMILIES)), default="gaussian",
                      help=Later(lambda: "closed form, in the distance d between two pixels: " + "; ".join(
                          f"{name} {formula}" for name, formula in covariance.FAMILIES.items())))),
    ("--sigma", dict(type=float, required=True, help="the family's length scale, in pixels")),
    ("--alpha", dict(type=float, default=1.0, help="the rational quadratic's alpha")),
    ("--view", dict(choices=("flat", "tiled"), default="flat",
                    help="flat S[k*i+j, k*l+m] or the tiled k x k grid of k x k blocks")),
    OUT_FILE,
)

SAMPLE_OPTIONS = (
    ("--kernel-size", dict(type=KERNEL_SIZE, default=None,
                           help=Later(lambda: f"k of the k x k filters, {kernel_span()}; default 9, or the "
                                              "covariance's"))),
    ("--scheme", dict(choices=Later(lambda: init.scheme_names("depthwise", with_source=False)), default="gaussian",
                      help="init scheme to sample from (ignored with --covariance)")),
    ("--sigma", dict(type=float, default=None, help=Later(lambda: "sigma of the sigma schemes ("
                     f"{', '.join(init.using_sigma(init.scheme_names()))}; default 1)"))),
    ("--covariance", dict(default=None, metavar="FILE", help="k^2 x k^2 covariance to sample from")),
    ("--variance", dict(type=float, default=None,
                        help="mean per-weight variance (default 1/(3 k^2), PyTorch's depthwise init)")),
    ("--n", dict(type=int, default=64, help="number of filters to draw")),
    SEED,
    OUT_FILE,
)

LEARNED_SOURCES = (
    ("--run", dict(type=int, default=None, metavar="RUN_ID", help="a stored run")),
    ("--checkpoint", dict(default=None, metavar="FILE",
                          help="a state dict (.safetensors, or torch.save read with weights_only=True)")),
    ("--covariances", dict(default=None, metavar="FILE",
                           help="covariances already learned: depth x k^2 x k^2 (.npy, .pt, .safetensors), as "
                                "--out or the Learned Covariances page's download writes them")),
    ("--timm", dict(default=None, metavar="NAME",
                    help="a pretrained timm model (with --pretrained), e.g. convmixer_1536_20 or "
                         "convnext_tiny.fb_in1k; its largest square depthwise filters (docs/learned.md lists "
                         "the models)")),
)

PRETRAINED_OPTIONS = (
    ("--pretrained", dict(action="store_true",
                          help="with --timm: timm.create_model(NAME, pretrained=True) reads the weights from the "
                               "Hugging Face cache ($HF_HOME/hub; only it with HF_HUB_OFFLINE=1) or the hub")),
    ("--weights", dict(default=None, metavar="FILE",
                       help="with --timm: read the pretrained weights from this file instead (timm's "
                            "pretrained_cfg_overlay file: .safetensors, or a torch.save file read weights-only)")),
)

LEARNED_OPTIONS = (
    ("--kernel-size", dict(type=KERNEL_SIZE, default=None,
                           help=Later(lambda: f"transfer to this kernel size first ({kernel_span()})"))),
    ("--depth", dict(type=int, default=None, help="transfer to this many layers first")),
    ("--out", dict(default=None, help="write the covariances stacked (layers x k^2 x k^2): "
                                      "file ending in .npy, .pt or .safetensors")),
    ("--save-set", dict(default=None, metavar="NAME",
                        help="save them as a named covariance set for the Training Lab's learned init")),
    ("--families", dict(action="store_true",
                        help=f"also fit every closed-form family ({', '.join(covariance.FAMILIES)}) to each "
                             "layer: r and sigma, and the best by r")),
    DB,
)

CNFA_SOURCES = (
    ("--run", dict(type=run_ref, default=None, metavar="RUN_ID",
                   help="analyse a stored run that kept its weights, or 'example' (default: train "
                        "a small CNN here with the options below)")),
    ("--checkpoint", dict(default=None, metavar="FILE",
                          help=f"analyse your own checkpoint ({CHECKPOINT_HELP}) against the same architecture "
                               "at PyTorch's default init, on --dataset's test images")),
)

CNFA_OPTIONS = (
    ("--dataset", dict(default="mnist5k",
                       help=f"the small CNN trains on {', '.join(model_pairs.CNN_DATASETS)}; a checkpoint is analysed "
                            "on any dataset with its number of channels")),
    dataset_param("dataset option, e.g. n_train=1000 for noisy-bars (repeatable)"),
    ("--noise", dict(type=float, default=0.5, help="background noise std of the noisy datasets")),
    ("--layers", dict(type=int, default=3, help="conv + ReLU + 2 x 2 max pooling blocks")),
    ("--width", dict(type=int, default=32, help="channels of every conv layer")),
    ("--kernel-size", dict(type=int, default=None, help="every layer's kernel size (default: 5 x 5, then 3 x 3)")),
    ("--init", dict(choices=("small", "default"), default="small",
                    help="small: N(0, 0.005²) first layer, N(0, 0.01²) after (seed 001); default: PyTorch's")),
    setting_option("epochs", default=2, help="training epochs of the small CNN"),
    setting_option("batch_size", default=64),
    setting_option("lr", help="peak learning rate (AdamW, one-cycle)"),
    SEED,
    setting_option("max_steps", help="cap on training steps"),
    ("--precision", dict(choices=("fp32", "bf16"), default="fp32",
                         help="training precision (fp32, as the Feature Ansatz page: bf16 cost 2-3 points of "
                              "accuracy from the small init)")),
    ("--images", dict(type=int, default=128, help="test images for the AGOP")),
    ("--outputs", dict(choices=agop.OUTPUT_CHOICES, default="all",
                       help="gradients of every class score (exact) or of the predicted class only")),
    json_path("also write the table as JSON"),
    ("--save", dict(action="store_true", help="save the trained CNN in the run store (the Feature Ansatz page "
                                              "lists it)")),
    DB,
    QUIET,
)

FREQUENCY_SOURCE = (
    ("--source", dict(choices=Later(frequency.frequency_sources), default="gaussian",
                      help="an init scheme (a sigma scheme or default): sampled from it; learned: sampled from a "
                           "run's learned covariances; trained: a run's trained filters")),
)

FREQUENCY_NETWORKS = (
    ("--run", dict(type=run_ref, default=None, metavar="RUN_ID",
                   help="the run of the learned / trained sources (default: the bundled example)")),
    ("--checkpoint", dict(default=None, metavar="FILE", help=f"or your own network's checkpoint ({CHECKPOINT_HELP})")),
)

FREQUENCY_OPTIONS = (
    ("--kernel-size", dict(type=KERNEL_SIZE, default=9,
                           help=Later(lambda: f"k of the sampled schemes, {kernel_span()} (a network keeps its "
                                              "own)"))),
    ("--sigma", dict(type=float, default=2.0, help="sigma of a sigma scheme (pixels)")),
    ("--n", dict(type=int, default=1024, help="filters sampled per layer")),
    ("--energy", dict(type=float, default=0.9, help="energy share of the effective size")),
    SEED,
    json_path("also write the table and the radial profiles as JSON"),
    DB,
)

DOWNLOAD_OPTIONS = (
    ("name", dict(help="dataset name, e.g. cifar10")),
    ("--data-root", dict(default=None, help="folder for datasets (default $CONVCOV_DATA)")),
)


# name: (help, command, the steps that build its options: see args.add_command)
COMMANDS = {
    "covariance": ("write a closed-form covariance (Gaussian, Laplace, Matern, rational quadratic)", cmd_covariance,
                   COVARIANCE_OPTIONS),
    "sample": ("draw filters from an init scheme or a covariance file", cmd_sample, SAMPLE_OPTIONS),
    "learned": ("learned covariances of a trained network: fitted sigma per layer, transfer, write, save for the "
                "Training Lab", cmd_learned, exclusive(LEARNED_SOURCES), PRETRAINED_OPTIONS, add_arch, LEARNED_OPTIONS),
    "cnfa": ("the Feature Ansatz check: r(patch-AGOP, W^T W) per conv layer, trained vs at init, of a small CNN "
             "trained here or a stored run", cmd_cnfa, exclusive(CNFA_SOURCES), add_arch, CNFA_OPTIONS),
    "frequency": ("filters in frequency: effective sizes and half-max frequency per layer, of an init scheme or a "
                  "stored run", cmd_frequency, FREQUENCY_SOURCE, exclusive(FREQUENCY_NETWORKS), add_arch,
                  FREQUENCY_OPTIONS),
    "download": ("fetch a torchvision dataset (CIFAR-10 and friends) into the data root", cmd_download,
                 DOWNLOAD_OPTIONS),
}


def add_parsers(sub, names=None) -> None:
    """Register the sub-parsers of the commands `names` (default: all of this module's, in order)."""
    for name in COMMANDS if names is None else names:
        add_command(sub, name, *COMMANDS[name])
