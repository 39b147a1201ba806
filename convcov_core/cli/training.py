"""The training commands: `compare` (train inits against each other over seeds) and `runs` (list,
show, export, delete stored runs), with their sub-parsers."""

from __future__ import annotations

import argparse
import json
import sys

from .. import covariance, init, models, reach
from ..compare import FREEZE_MODES, ComparisonPlan, compare, compare_seconds, variants_for
from ..comparison_jobs import ComparisonJobs, comparison_label
from ..text import duration, number
from ..train import TrainConfig, size_label
from ..train.config import settings_of
from .args import (
    DB,
    QUIET,
    Later,
    add_command,
    dataset_param,
    int_list,
    json_path,
    learned_ref,
    name_list,
    setting_dest,
    setting_option,
)
from .output import TerminalProgress, format_comparison, format_table, print_estimate, write_json
from .sources import learned_covariances, store, writable_store

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def training_config(args, covariances=None) -> TrainConfig:
    """The TrainConfig that compare's training flags describe (every field with an option made by
    setting_option, plus --dataset-param; a ConvMixer's kernel and patch size default to 9 and 2),
    validated. init, seed and freeze_filters are set per variant (--inits, --seeds, --freeze)."""
    values = {name: getattr(args, setting_dest(flag)) for name, flag in SETTING_FLAGS.items()}
    if args.model.startswith("convmixer"):
        values["kernel_size"] = 9 if values["kernel_size"] is None else values["kernel_size"]
        values["patch_size"] = 2 if values["patch_size"] is None else values["patch_size"]
    return TrainConfig(**values, dataset_params=dict(args.dataset_param), covariances=covariances).validate()


def cmd_compare(args) -> int:
    variants, references = variants_for(args.inits, args.freeze)
    run_store = writable_store(args) if args.save else None  # a read-only store refuses before training
    covariances = None
    if args.learned_from is not None or init.needing_source(args.inits):
        covariances = learned_covariances(args)
    base = training_config(args, covariances)
    for seed in args.seeds:  # every run's config is refused before the estimate trains a step
        base.replace(seed=seed).validate()
    if (note := reach.kernel_reach_note(base)) is not None:
        print(f"convcov: note: {note}", file=sys.stderr)
    if not args.quiet:
        seeds = list(args.seeds)
        print_estimate(compare_seconds(base, variants, seeds, ensemble=args.ensemble),
                       f"{len(variants) * len(seeds)} run(s)", "a few training steps per filter mode")
    progress = None if args.quiet else TerminalProgress()
    metric = "test_acc_raw" if args.raw_bn_eval else "test_acc"
    if run_store is None:
        cmp = compare(base, variants, args.seeds, progress, references=references, metric=metric,
                      ensemble=args.ensemble)
    else:  # a recorded job: each run stored as it finishes; killed, it is listed as interrupted (Lab: Resume)
        plan = ComparisonPlan(base, variants, references, list(args.seeds), args.ensemble)
        label = comparison_label(plan, " (command line)")
        cmp = ComparisonJobs(run_store).start(plan, label, name=args.name, metric=metric)(progress)
    print(format_comparison(cmp))
    if args.json:
        write_json(args.json, cmp.to_dict())
    if run_store is not None and (ids := [r.id for runs in cmp.runs.values() for r in runs]):
        print(f"saved comparison {cmp.id} (runs {min(ids)}-{max(ids)}) in {run_store.path}", file=sys.stderr)
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

#: TrainConfig fields whose compare option is written out here, not made by setting_option: each
#: variant sets its init, seed and frozen filters; --dataset-param and --learned-from build values.
BY_HAND = {"init": "--inits", "seed": "--seeds", "freeze_filters": "--freeze", "dataset_params": "--dataset-param",
           "covariances": "--learned-from"}

_SETTINGS_HERE = (
    setting_option("dataset"),
    dataset_param("dataset parameter (repeatable), e.g. noise=0.5"),
    setting_option("data_root", help="folder for datasets (default $CONVCOV_DATA)"),
    setting_option("model"),
    setting_option("kernel_size", type=int, default=None,  # the cap is checked after parsing (cli.main), with why
                   help="depthwise kernel size (default: 9 for a ConvMixer, the model's own for timm and cnn models)"),
    setting_option("patch_size", default=None,
                   help="patch size (default: 2 for a ConvMixer, the model's own for timm models)"),
    setting_option("epochs"),
    setting_option("batch_size"),
    setting_option("lr"),
    setting_option("weight_decay"),
    setting_option("schedule"),
    setting_option("label_smoothing"),
    ("--inits", dict(type=name_list, default=["default", "gaussian"],
                     help=Later(lambda: f"comma-separated init schemes ({', '.join(init.scheme_names())}); "
                                        "the first is the reference"))),
    ("--freeze", dict(choices=FREEZE_MODES, default="none",
                      help="train the depthwise filters (none), freeze them (filters), or run both")),
    setting_option("sigma_first", help="sigma of the first layer, for the schemes with a sigma schedule (default 1)"),
    setting_option("sigma_last", help="sigma of the last layer, for the schemes with a sigma schedule "
                                      "(default max(1, k/3))"),
    ("--learned-from", dict(type=learned_ref, default=None, metavar="SOURCE",
                            help="where the 'learned' init's covariances come from: a stored run's id, 'example' "
                                 "(the bundled ConvMixer-64/8 trained on mnist5k; the default), set:NAME (saved by "
                                 "`learned --save-set` or the Learned Covariances page) or a file written by "
                                 "`learned --out`")),
    ("--seeds", dict(type=int_list, default=[0, 1, 2], help="comma-separated seeds; every variant runs once "
                                                         "per seed and differences are paired by seed")),
    setting_option("device"),
    setting_option("max_steps", help="cap on training steps per run"),
    setting_option("threads", help="CPU threads for training (default: torch's choice, one per core)"),
    setting_option("compile"),
    setting_option("precision"),
)
_KEEP_WEIGHTS = setting_option("keep_state_dict", help="with --save, store each run's final weights too (the "
                                                       "Learned Covariances page reads a ViT's attention from them)")
#: Every TrainConfig field with a flag and no option above gets one made by setting_option, so a new
#: field with a Setting.flag is a compare option (and, if it is an axis, a `sweep run` axis) by itself.
_SETTINGS_ADDED = tuple(setting_option(name) for name, described in settings_of(TrainConfig).items()
                        if described.flag and name not in BY_HAND
                        and described.flag not in {flags for flags, _ in (*_SETTINGS_HERE, _KEEP_WEIGHTS)})
#: compare's flag of each TrainConfig field training_config reads from the parsed arguments.
SETTING_FLAGS = {name: described.flag for name, described in settings_of(TrainConfig).items()
                 if described.flag and name not in BY_HAND}

COMPARE_OPTIONS = (
    *_SETTINGS_HERE,
    *_SETTINGS_ADDED,
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
    _KEEP_WEIGHTS,
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
