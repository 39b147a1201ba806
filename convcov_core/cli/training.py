"""The training commands: `compare` (train inits against each other over seeds) and `runs` (list,
show, export, delete stored runs), with their sub-parsers."""

from __future__ import annotations

import argparse
import json
import sys

from .. import covariance, init, models, reach
from ..step import PRECISIONS
from ..text import duration, number
from ..train import FREEZE_MODES, TrainConfig, compare, size_label, variants_for
from .args import DB, QUIET, Later, add_command, dataset_param, int_list, json_path, learned_ref, name_list
from .output import TerminalProgress, format_comparison, format_table, write_json
from .sources import learned_covariances, store, writable_store

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def training_config(args, covariances=None) -> TrainConfig:
    """The TrainConfig that compare's training flags describe (a ConvMixer's kernel and patch size
    default to 9 and 2), validated."""
    convmixer = args.model.startswith("convmixer")
    return TrainConfig(dataset=args.dataset, dataset_params=dict(args.dataset_param), model=args.model,
                       kernel_size=9 if args.kernel_size is None and convmixer else args.kernel_size,
                       patch_size=2 if args.patch_size is None and convmixer else args.patch_size,
                       epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                       schedule=args.schedule, label_smoothing=args.label_smoothing,
                       sigma_first=args.sigma_first, sigma_last=args.sigma_last, covariances=covariances,
                       device=args.device, max_steps=args.max_steps, threads=args.threads,
                       compile=args.compile, precision=args.precision, data_root=args.data_root,
                       keep_state_dict=args.keep_weights).validate()


def cmd_compare(args) -> int:
    variants, references = variants_for(args.inits, args.freeze)
    run_store = writable_store(args) if args.save else None  # a read-only store refuses before training
    covariances = None
    if args.learned_from is not None or "learned" in args.inits:
        covariances = learned_covariances(args)
    base = training_config(args, covariances)
    if (note := reach.kernel_reach_note(base)) is not None:
        print(f"convcov: note: {note}", file=sys.stderr)
    progress = None if args.quiet else TerminalProgress()
    metric = "test_acc_raw" if args.raw_bn_eval else "test_acc"
    cmp = compare(base, variants, args.seeds, progress, references=references, metric=metric,
                  ensemble=args.ensemble)
    print(format_comparison(cmp))
    if args.json:
        write_json(args.json, cmp.to_dict())
    if run_store is not None:
        cmp_id = run_store.save_comparison(cmp, name=args.name)
        ids = [r.id for runs in cmp.runs.values() for r in runs]
        print(f"saved comparison {cmp_id} (runs {min(ids)}-{max(ids)}) in {run_store.path}", file=sys.stderr)
    return 0


def _init_of(model: str, init: str, variant: str | None) -> str:
    """A run's init as listed: a Feature Ansatz CNN has no depthwise scheme, its init is its variant
    (small-normal or pytorch-default)."""
    return variant if variant and models.parse_spec(model)["kind"] == "cnn" else init


def _list_comparisons(args, run_store) -> int:
    items = run_store.list_comparisons()
    if args.json:
        print(json.dumps([vars(c) for c in items], indent=1))
        return 0
    rows = [[c.id, c.created, c.name or "", c.dataset, c.model, ",".join(c.variants),
             ",".join(map(str, c.seeds)), c.n_runs, c.status] for c in items]
    print(format_table(["id", "created", "name", "dataset", "model", "variants", "seeds", "runs",
                        "status"], rows) if rows else f"no comparisons in {run_store.path}")
    return 0


def cmd_runs_list(args) -> int:
    run_store = store(args)
    if args.comparisons:
        return _list_comparisons(args, run_store)
    items = run_store.list()
    if args.json:
        print(json.dumps([vars(r) for r in items], indent=1))
        return 0
    rows = [[r.id, r.created, r.variant or r.name or "", r.dataset, r.model, number(r.kernel_size, "d"),
             number(r.depth, "d"), _init_of(r.model, r.init, r.variant), "yes" if r.freeze_filters else "no",
             r.seed, r.status, number(r.test_acc), number(r.wall_time, ".0f"), number(r.comparison_id, "d", "")]
            for r in items]
    print(format_table(["id", "created", "variant/name", "dataset", "model", "k", "depth", "init", "frozen",
                        "seed", "status", "test acc %", "s", "comparison"], rows)
          if rows else f"no runs in {run_store.path}")
    return 0


def cmd_runs_show(args) -> int:
    run_store = store(args)
    if args.comparison:
        print(format_comparison(run_store.get_comparison(args.id)))
        return 0
    run = run_store.get(args.id)
    c = run.config
    print(f"run {run.id}: {run.status} - {run.message}")
    init_name = _init_of(c.model, c.init, run.variant)
    print(f"{c.model} k={size_label(c.kernel_size)} p={size_label(c.patch_size)} on {c.dataset}; init {init_name}"
          f"{' (filters frozen)' if c.freeze_filters else ''}; seed {c.seed}; {c.epochs} epoch(s), "
          f"batch {c.batch_size}, lr {c.lr:g}; {run.device}, {run.precision}, {duration(run.wall_time, compact=True)}")
    h = run.history
    rows = [[i + 1, h["epoch_end_step"][i], number(h["train_acc"][i]), number(h["test_acc"][i]),
             number(h["images_per_s"][i], ".0f")] for i in range(len(h["test_acc"]))]
    if rows:
        print()
        print(format_table(["epoch", "step", "train acc %", "test acc %", "images/s"], rows))
    if run.covariances:
        fits = [covariance.fit_sigma(S) for S in run.covariances]
        rows = [[name, f"{s:.2f}", f"{r:.3f}"] for name, (s, r) in zip(run.layer_names, fits)]
        print()
        print("learned filter covariance per depthwise layer (closest Gaussian):")
        print(format_table(["layer", "sigma", "fit r"], rows))
    return 0


def cmd_runs_export(args) -> int:
    json_file, csv_file = store(args).export(args.id, args.path)
    print(f"wrote {json_file} and {csv_file}", file=sys.stderr)
    return 0


def cmd_runs_delete(args) -> int:
    run_store = store(args)
    for run_id in args.ids:
        if args.comparison:
            run_store.delete_comparison(run_id)
        else:
            run_store.delete(run_id)
    what = "comparison" if args.comparison else "run"
    print(f"deleted {what}(s) {', '.join(map(str, args.ids))}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------
# Sub-parsers
# ---------------------------------------------------------------------------------------------

COMPARE_OPTIONS = (
    ("--dataset", dict(default="mnist5k", help="mnist5k, noisy-bars, noisy-mnist, textures (offline), a "
                                              "torchvision dataset in the data root, or folder:NAME")),
    dataset_param("dataset parameter (repeatable), e.g. noise=0.5"),
    ("--data-root", dict(default=None, help="folder for datasets (default $CONVCOV_DATA)")),
    ("--model", dict(default="convmixer-64/6",
                     help="convmixer-W/D, convmixer-W/D-niff (NIFF filters, read in a k x k window), "
                          "cnn-W1,W2,..., or timm:NAME (e.g. timm:convnext_atto)")),
    ("--kernel-size", dict(type=int, default=None, help="depthwise kernel size (default: 9 for a ConvMixer, "
                                                        "the model's own for timm and cnn models)")),
    ("--patch-size", dict(type=int, default=None,
                          help="patch size (default: 2 for a ConvMixer, the model's own for timm models)")),
    ("--epochs", dict(type=int, default=2, help="training epochs per run")),
    ("--batch-size", dict(type=int, default=128, help="training batch size")),
    ("--lr", dict(type=float, default=0.01, help="peak learning rate (AdamW)")),
    ("--weight-decay", dict(type=float, default=0.01, help="AdamW weight decay")),
    ("--schedule", dict(default="onecycle", help="onecycle (0 -> lr over 40%% of the steps, then down to 0) "
                                                 "or constant")),
    ("--label-smoothing", dict(type=float, default=0.0, help="label smoothing of the cross-entropy, in [0, 1)")),
    ("--inits", dict(type=name_list, default=["default", "gaussian"],
                     help=Later(lambda: f"comma-separated init schemes ({', '.join(init.init_names())}); "
                                        "the first is the reference"))),
    ("--freeze", dict(choices=FREEZE_MODES, default="none",
                      help="train the depthwise filters (none), freeze them (filters), or run both")),
    ("--sigma-first", dict(type=float, default=None, help="Gaussian init: sigma of the first layer (default 1)")),
    ("--sigma-last", dict(type=float, default=None,
                          help="Gaussian init: sigma of the last layer (default max(1, k/3))")),
    ("--learned-from", dict(type=learned_ref, default=None, metavar="SOURCE",
                            help="where the 'learned' init's covariances come from: a stored run's id, 'example' "
                                 "(the bundled ConvMixer-64/8 trained on mnist5k; the default), set:NAME (saved by "
                                 "`learned --save-set` or the Learned Covariances page) or a file written by "
                                 "`learned --out`")),
    ("--seeds", dict(type=int_list, default=[0, 1, 2], help="comma-separated seeds; every variant runs once "
                                                         "per seed and differences are paired by seed")),
    ("--device", dict(default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")),
    ("--max-steps", dict(type=int, default=None, help="cap on training steps per run")),
    ("--threads", dict(type=int, default=None,
                       help="CPU threads for training (default: torch's choice, one per core)")),
    ("--compile", dict(action="store_true", help="train through torch.compile (pays off on GPUs for long runs; "
                                                 "compile time is reported)")),
    ("--precision", dict(choices=PRECISIONS, default="auto",
                         help="auto: bf16 autocast on CUDA and on CPUs with AMX or AVX512-BF16, fp32 elsewhere")),
    ("--ensemble", dict(action=argparse.BooleanOptionalAction, default=None,
                        help="train runs that differ only in seed, init and frozen filters together as one grouped "
                             "network, each ending as it would alone within float tolerance (default: on a GPU, "
                             "not on the CPU, where it measured no faster; docs/performance.md)")),
    ("--raw-bn-eval", dict(action="store_true",
                           help="judge the raw eval-mode test accuracy, with the BatchNorm statistics that "
                                "training left, instead of statistics recomputed on training images after the "
                                "last step (how fast an init lets them settle; both are kept with every run)")),
    json_path("also write the comparison as JSON"),
    ("--save", dict(action="store_true", help="save the runs in the run store")),
    ("--name", dict(default=None, help="name for the saved comparison")),
    ("--keep-weights", dict(action="store_true", help="with --save, store each run's final weights too (the "
                                                     "Learned Covariances page reads a ViT's attention from them)")),
    DB,
    QUIET,
)

# (action, help, options, command); every action also takes --db
RUNS_ACTIONS = (
    ("list", "list stored runs (or comparisons)",
     (("--comparisons", dict(action="store_true", help="list saved comparisons instead of runs")),
      ("--json", dict(action="store_true", help="print JSON instead of a table"))), cmd_runs_list),
    ("show", "show one run (or comparison)",
     (("id", dict(type=int)),
      ("--comparison", dict(action="store_true", help="ID is a comparison id"))), cmd_runs_show),
    ("export", "write a run as JSON plus its history as CSV",
     (("id", dict(type=int)),
      ("path", dict(help="JSON file to write; the CSV goes next to it"))), cmd_runs_export),
    ("delete", "delete runs (or comparisons with their runs)",
     (("ids", dict(type=int, nargs="+")),
      ("--comparison", dict(action="store_true", help="IDs are comparison ids"))), cmd_runs_delete),
)


def add_runs_actions(runs) -> None:
    """The actions of `runs`, each with --db."""
    actions = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    for name, help, options, command in RUNS_ACTIONS:
        add_command(actions, name, help, command, options, (DB,))


# name: (help, command, the steps that build its options: see args.add_command)
COMMANDS = {
    "compare": ("train inits against each other over seeds", cmd_compare, COMPARE_OPTIONS),
    "runs": ("stored runs: list, show, export, delete", None, add_runs_actions),
}


def add_parsers(sub, names=None) -> None:
    """Register the sub-parsers of the commands `names` (default: all of this module's, in order)."""
    for name in COMMANDS if names is None else names:
        add_command(sub, name, *COMMANDS[name])
