"""Command line: `python -m convcov_core ...` or `convcov ...`.

    compare     train inits against each other over seeds; table of mean ± std and paired differences
    covariance  write the closed-form Gaussian covariance of k x k filters (.npy, .pt or .safetensors)
    sample      draw filters from an init scheme or a covariance file
    learned     learned covariances of a trained network (the bundled example, a stored run, a
                checkpoint or a covariance file): fitted sigma per layer; transfer them, write them,
                save them for the Lab
    cnfa        the Feature Ansatz check: r(patch-AGOP, W^T W) per conv layer, trained vs at init, of
                a small CNN trained here, a stored run with weights or a checkpoint
    frequency   filters in frequency: effective sizes and half-max frequency per layer, of an init
                scheme, a stored run or a checkpoint (its trained filters or its learned covariances)
    runs        list | show | export | delete stored runs
    download    fetch a torchvision dataset into the data root
    reproduce   test the papers' claims with small fixed experiments; write a report

Bad arguments, and running out of memory, print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import torch

from . import analysis, covariance, data, examples, init, lab, models, paths, reproduce, ui
from . import feature_ansatz as fa
from .comparison_table import comparison_table
from .json_safe import json_safe
from .matrix_files import MATRIX_SUFFIXES, load_matrix, save_tensor
from .step import PRECISIONS
from .text import duration
from .train import (
    FREEZE_MODES,
    ComparisonResult,
    ProgressEvent,
    RunResult,
    TrainConfig,
    compare,
    device_and_precision,
    size_label,
    variants_for,
)


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


# ---------------------------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------------------------


def _run_ref(text: str) -> int | str:
    """A stored run's id, or "example" (the bundled example network)."""
    if text.strip() == "example":
        return "example"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a run id or 'example', got {text!r}") from None


def _learned_ref(text: str) -> int | str | tuple[str, str] | Path:
    """Where learned covariances come from: a stored run's id, "example", "set:NAME" (a saved
    covariance set) or a matrix file (depth x k^2 x k^2, or one k^2 x k^2 matrix)."""
    text = text.strip()
    if text.startswith("set:") and text[4:].strip():
        return ("set", text[4:].strip())
    if Path(text).suffix.lower() in MATRIX_SUFFIXES:
        return Path(text)
    try:
        return _run_ref(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a run id, 'example', set:NAME or a {'/'.join(MATRIX_SUFFIXES)} file, got {text!r}") from None


def _int_list(text: str) -> list[int]:
    """"0,1,2" or "0-4" (inclusive) -> list of ints."""
    try:
        if "-" in text.strip("-") and "," not in text:
            lo, hi = (int(part) for part in text.split("-"))
            if hi < lo:
                raise ValueError
            return list(range(lo, hi + 1))
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0,1,2 or 0-4, got {text!r}") from None


def _name_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names, e.g. default,gaussian")
    return names


def _key_value(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


# ---------------------------------------------------------------------------------------------
# Progress bar and tables
# ---------------------------------------------------------------------------------------------


class TerminalProgress:
    """Callback drawing a progress bar with ETA on a terminal; elsewhere (a log file, a pipe) one line
    per finished run and a progress line every `log_interval` seconds in between."""

    def __init__(self, stream=None, width: int = 24, min_interval: float = 0.1, log_interval: float = 30.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.width, self.min_interval = width, min_interval
        self.log_interval = log_interval
        self.started = self.run_started = time.perf_counter()
        self.last_draw = 0.0
        self.drawn = False

    def __call__(self, event: ProgressEvent):
        now = time.perf_counter()
        frac = (event.run_index + event.step / max(event.total_steps, 1)) / max(event.n_runs, 1)
        elapsed = now - self.started
        eta = elapsed * (1 - frac) / frac if frac > 0 else None
        where = f"run {event.run_index + 1}/{event.n_runs} {event.variant or ''} seed {event.seed}"
        if event.kind == "done":
            if self.tty and self.drawn:
                self.stream.write("\r\033[K")
            acc = f"test {event.test_acc:.2f}%" if event.test_acc is not None else event.status
            self.stream.write(f"{where}: {acc} ({duration(now - self.run_started, compact=True)}), "
                              f"ETA {duration(eta, compact=True)}\n")
            self.stream.flush()
            self.run_started, self.drawn = now, False
            return None
        interval = self.min_interval if self.tty else self.log_interval
        if now - self.last_draw < interval and (event.kind == "step" or not self.tty):
            return None
        loss = f" loss {event.loss:.3f}" if event.loss is not None else ""
        status = (f"{100 * frac:3.0f}% {where} epoch {event.epoch} step {event.step}/{event.total_steps}"
                  f"{loss} ETA {duration(eta, compact=True)}")
        if not self.tty:
            self.stream.write(status.lstrip() + "\n")
            self.stream.flush()
            self.last_draw = now
            return None
        filled = int(round(self.width * frac))
        self.stream.write(f"\r\033[K[{'#' * filled}{'-' * (self.width - filled)}] {status}")
        self.stream.flush()
        self.last_draw, self.drawn = now, True
        return None


def _fmt(value, spec: str = ".2f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned text table with a rule under the header."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def format_comparison(cmp: ComparisonResult) -> str:
    """The comparison as text: setup line, the results table (comparison_table), verdicts and times."""
    c = cmp.base_config
    setup = (f"{c.model} k={size_label(c.kernel_size)} p={size_label(c.patch_size)} on {c.dataset}, "
             f"{c.epochs} epoch(s), batch {c.batch_size}, lr {c.lr:g}, seeds {','.join(map(str, cmp.seeds))}, "
             f"device {device_and_precision(cmp)}")
    table = comparison_table(cmp)
    lines = [setup, "", format_table(table.columns, table.rows), ""]
    lines += cmp.verdicts
    other = "test_acc_raw" if cmp.metric == "test_acc" else "test_acc"
    means = ", ".join(f"{r['variant']} {r['mean']:.1f}" for r in cmp.judged_on(other).rows if r["mean"] is not None)
    if means:
        what = {"test_acc_raw": "Raw eval-mode test accuracy, BatchNorm statistics as training left them",
                "test_acc": "Test accuracy with BatchNorm statistics recomputed after training"}[other]
        lines.append(f"{what} (mean %, not judged): {means}.")
    status = "" if cmp.status == "ok" else f" ({cmp.status}: only finished runs are counted)"
    lines.append(f"Total wall time {duration(cmp.wall_time, compact=True)} for "
                 f"{sum(len(v) for v in cmp.runs.values())} run(s){status}.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def _store(args):
    from .runs import RunStore
    return RunStore(args.db)


def _run_or_example(args, run_id) -> RunResult:
    """A stored run, or the bundled example when run_id is None or "example"."""
    return examples.load_example() if run_id in (None, "example") else _store(args).get(run_id)


def _covariances_from_file(path: Path) -> list:
    """Per-layer covariances from a matrix file (lab.covariances_from_matrix). A layer that is not
    positive semi-definite is named: the learned init uses its nearest PSD matrix."""
    covariances = lab.covariances_from_matrix(load_matrix(str(path)), str(path))
    for layer in lab.non_psd_layers(covariances):
        print(f"convcov: note: layer {layer} of {path} is not positive semi-definite; the learned init "
              "uses its nearest PSD matrix", file=sys.stderr)
    return covariances


def _learned_covariances(args) -> list:
    """The covariances --learned-from names: a stored run's, a saved set's, a file's, or the bundled
    example's (the default)."""
    ref = args.learned_from
    if isinstance(ref, Path):
        covariances = _covariances_from_file(ref)
        origin = str(ref)
    elif isinstance(ref, tuple):
        covariances = lab.load_covariance_set(ref[1])
        origin = f"covariance set {ref[1]!r}"
    else:
        run = _run_or_example(args, ref)
        covariances = run.covariances
        if not covariances:
            raise ValueError(f"run {ref} has no stored covariances to initialize from")
        origin = (f"the bundled example ({run.config.model} on {run.config.dataset})" if ref in (None, "example")
                  else f"run {ref} ({run.config.model} on {run.config.dataset})")
    k = covariance.kernel_size_of(covariances[0])
    print(f"learned init: {len(covariances)} layer(s) of {k} x {k} covariances from {origin}", file=sys.stderr)
    return covariances


def cmd_compare(args) -> int:
    variants, references = variants_for(args.inits, args.freeze)
    covariances = None
    if args.learned_from is not None or "learned" in args.inits:
        covariances = _learned_covariances(args)
    convmixer = args.model.startswith("convmixer")
    base = TrainConfig(dataset=args.dataset, dataset_params=dict(args.dataset_param), model=args.model,
                       kernel_size=9 if args.kernel_size is None and convmixer else args.kernel_size,
                       patch_size=2 if args.patch_size is None and convmixer else args.patch_size,
                       epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                       schedule=args.schedule, label_smoothing=args.label_smoothing,
                       sigma_first=args.sigma_first, sigma_last=args.sigma_last, covariances=covariances,
                       device=args.device, max_steps=args.max_steps, threads=args.threads,
                       compile=args.compile, precision=args.precision, data_root=args.data_root)
    base.validate()
    if (note := lab.kernel_reach_note(base)) is not None:
        print(f"convcov: note: {note}", file=sys.stderr)
    progress = None if args.quiet else TerminalProgress()
    metric = "test_acc_raw" if args.raw_bn_eval else "test_acc"
    cmp = compare(base, variants, args.seeds, progress, references=references, metric=metric)
    print(format_comparison(cmp))
    if args.json:
        _write_json(args.json, cmp.to_dict())
    if args.save:
        store = _store(args)
        cmp_id = store.save_comparison(cmp, name=args.name)
        ids = [r.id for runs in cmp.runs.values() for r in runs]
        print(f"saved comparison {cmp_id} (runs {min(ids)}-{max(ids)}) in {store.path}", file=sys.stderr)
    return 0


def cmd_covariance(args) -> int:
    S = covariance.gaussian(args.kernel_size, args.sigma)
    if args.view == "tiled":
        S = covariance.to_tiled(S)
    path = save_tensor(S, args.out, "covariance")
    print(f"wrote {args.view} Gaussian covariance ({S.shape[0]} x {S.shape[1]}, k={args.kernel_size}, "
          f"sigma={args.sigma:g}) to {path}", file=sys.stderr)
    return 0


def cmd_sample(args) -> int:
    generator = torch.Generator().manual_seed(args.seed)
    variance = args.variance if args.variance is not None else "default"
    if args.covariance is not None:
        S = covariance.validate_covariance(load_matrix(args.covariance))
        k = args.kernel_size or covariance.kernel_size_of(S)
        filters = init.sample_scheme("learned", k, args.n, covariance=S, variance=variance,
                                     generator=generator)
        source = f"covariance {args.covariance}"
    else:
        k = args.kernel_size or 9
        filters = init.sample_scheme(args.scheme, k, args.n, sigma=args.sigma, variance=variance,
                                     generator=generator)
        source = f"scheme {args.scheme}"
    path = save_tensor(filters, args.out, "filters")
    print(f"wrote {args.n} filters {k}x{k} from {source} to {path}", file=sys.stderr)
    return 0


def _learned_set(args):
    """The LearnedSet that `learned`'s --run / --checkpoint / --covariances names (the bundled example
    by default), with a note on stderr when a run's filters were wider than its feature maps could use."""
    if args.checkpoint is not None:
        state = models.load_state_dict(args.checkpoint, max_bytes=lab.max_upload_bytes())
        return lab.learned_from_state_dict(state, args.arch, Path(args.checkpoint).name)
    if args.covariances is not None:
        path = Path(args.covariances)
        return lab.learned_from_file_covariances(_covariances_from_file(path), path.name)
    run = _run_or_example(args, args.run)
    if (warning := lab.run_reach_warning(run)) is not None:
        print(f"convcov: note: {warning}", file=sys.stderr)
    return lab.learned_from_run(run, name="the bundled example" if args.run is None else None)


def cmd_learned(args) -> int:
    learned = _learned_set(args)
    fits = lab.layer_fits(learned.covariances)
    print(f"{learned.source}: {learned.depth} depthwise layer(s), {learned.kernel_size} x "
          f"{learned.kernel_size} filters")
    print(format_table(["#", "layer", "fitted sigma (px)", "fit r"],
                       [[f["layer"], name, f"{f['sigma']:.2f}", f"{f['r']:.3f}"]
                        for f, name in zip(fits, learned.layer_names)]))
    first, last = lab.fitted_schedule(fits)
    print(f"straight line through the fitted sigmas: {first:.2f} -> {last:.2f} "
          f"(compare --sigma-first {first:.2f} --sigma-last {last:.2f} imitates it)")
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
        path = lab.save_covariance_set(args.save_set, covariances, source=learned.source)
        print(f"saved covariance set {args.save_set!r} ({k} x {k}, {depth} layers) to {path}; the "
              f"Training Lab offers it for the learned init, and `compare --learned-from set:{path.stem}` "
              "uses it", file=sys.stderr)
    return 0


def _write_json(path: str, document: dict) -> None:
    Path(path).write_text(json.dumps(json_safe(document), indent=1, allow_nan=False))
    print(f"wrote {path}", file=sys.stderr)


def _cnfa_pair(args) -> fa.ModelPair:
    """The checkpoint or stored run (or the example) named, else a small CNN trained here (saved
    on --save)."""
    if args.checkpoint is not None:
        state = models.load_state_dict(args.checkpoint, max_bytes=lab.max_upload_bytes())
        return fa.pair_from_state_dict(state, args.arch, Path(args.checkpoint).name, args.dataset)
    if args.run is not None:
        return fa.pair_from_run(_run_or_example(args, args.run),
                                name="the bundled example" if args.run == "example" else None)
    config = fa.cnn_config(args.dataset, noise=args.noise, layers=args.layers, width=args.width,
                           kernel_size=args.kernel_size, epochs=args.epochs, batch_size=args.batch_size,
                           lr=args.lr, seed=args.seed, max_steps=args.max_steps,
                           dataset_params=dict(args.dataset_param)).replace(precision=args.precision)
    progress = None if args.quiet else TerminalProgress()
    small = args.init == "small"
    if args.save:
        return fa.train_cnn_and_save(config, progress, small_init=small, store=_store(args))
    return fa.train_cnn(config, progress, small_init=small)


def cmd_cnfa(args) -> int:
    started = time.perf_counter()
    pair = _cnfa_pair(args)
    comparison = fa.compare_cnfa(pair, fa.analysis_images(pair.config, args.images), outputs=args.outputs)
    table = comparison.table()
    accuracy = "" if pair.test_acc is None else f", test accuracy {pair.test_acc:.1f}%"
    print(f"{pair.label}{accuracy}; AGOP of {args.outputs} outputs on {comparison.n_images} test "
          f"image(s) of {fa.describe_dataset(pair.config)}")
    print(format_table(["layer", "kind", "filters", "r trained", "r at init", "r(CNFM init, trained)"],
                       [[r["layer"], r["kind"], r["filters"], _fmt(r["r trained"], ".3f", "nan"),
                         _fmt(r["r at init"], ".3f", "nan"),
                         _fmt(r["r(CNFM init, CNFM trained)"], ".3f", "nan")] for r in table]))
    trained = [r["r trained"] for r in table if math.isfinite(r["r trained"])]
    initial = [r["r at init"] for r in table if math.isfinite(r["r at init"])]
    if trained and initial:
        print(f"mean r {sum(trained) / len(trained):.3f} trained vs {sum(initial) / len(initial):.3f} "
              f"at init; {sum(r >= 0.9 for r in trained)} of {len(trained)} layer(s) at 0.9 or above "
              f"after training ({duration(time.perf_counter() - started, compact=True)})")
    if args.json:
        _write_json(args.json, {"model": pair.label, "test_acc": pair.test_acc, "images": comparison.n_images,
                                "outputs": args.outputs, "layers": table})
    return 0


def cmd_frequency(args) -> int:
    run = None
    if args.source in ("learned", "trained"):
        if args.checkpoint is None:
            run = _run_or_example(args, args.run)
        else:
            state = models.load_state_dict(args.checkpoint, max_bytes=lab.max_upload_bytes())
            run = fa.filters_from_state_dict(state, args.arch, Path(args.checkpoint).name)
    view = fa.frequency_view(args.source, kernel_size=args.kernel_size, n=args.n, sigma=args.sigma,
                             run=run, seed=args.seed, energy=args.energy)
    s, table = view.summary, view.table()
    origin = ("" if run is None else f" of {run.id}" if args.checkpoint is not None
              else " of the bundled example" if args.run in (None, "example") else f" of run {args.run}")
    print(f"{args.source} filters{origin}: {len(s.names)} layer(s) of {s.kernel_size} x {s.kernel_size}, "
          f"spectra zero-padded to {s.size} x {s.size}, effective size at {s.energy:.0%} of the energy")
    header = ["layer", "mean eff. size", "10-90%", "at full size", "half-max freq (cycles/px)"]
    rows = [[r["layer"], f"{r['mean effective size']:.2f}",
             f"{r['effective size 10%']:.0f}-{r['effective size 90%']:.0f}", f"{r['share at full size']:.0%}",
             _fmt(r["half-max frequency"], ".3f", "above 0.5")] for r in table]
    if view.fitted:  # the closed form at each layer's fitted sigma, as smooth as the layer or not
        closed = fa.sigma_curve(s.kernel_size, [r["fitted sigma"] for r in table], size=s.size,
                                seed=args.seed).half_max
        header += ["fitted sigma (r)", "closed form's half-max at it"]
        for row, r, half in zip(rows, table, closed):
            row += [f"{r['fitted sigma']:.2f} (r {r['fit r']:.2f})", _fmt(half, ".3f", "above 0.5")]
    print(format_table(header, rows))
    if view.white_noise is not None:
        reference = analysis.half_max_frequency(view.white_noise, s.size)
        print(f"reference, PyTorch default (white noise) at k = {s.kernel_size}: half-max frequency "
              f"{_fmt(reference, '.3f', 'above 0.5 (never falls to half)')}")
    if args.json:
        freq = (s.radii.to(torch.float64) / s.size).tolist()
        _write_json(args.json, {
            "source": args.source, "kernel_size": s.kernel_size, "energy": s.energy, "size": s.size,
            "layers": table, "radial_frequency": freq,
            "profiles": {name: p.tolist() for name, p in zip(s.names, s.profiles)},
            "white_noise_profile": None if view.white_noise is None else view.white_noise.tolist()})
    return 0


def cmd_reproduce(args) -> int:
    folder = reproduce.reproduce(args.suite, out=args.out, dataset=args.dataset, device=args.device,
                                 callback=None if args.quiet else TerminalProgress())
    report = reproduce.load_report(folder)
    print(reproduce.provenance(report))
    print(format_table(["#", "claim", "verdict", "our number"],
                       [[c["id"], c["title"], c["verdict"], c["our_number"]] for c in report["claims"]]))
    print(f"report written to {folder}", file=sys.stderr)
    return 0


def cmd_download(args) -> int:
    root = Path(args.data_root).expanduser() if args.data_root else paths.data_root()
    if data.is_embedded(args.name):
        print(f"{args.name} ships with convcov; nothing to download")
        return 0
    train_x, _, test_x, _, info = data.load_dataset(args.name, root=root, download=True)
    print(f"{args.name}: {len(train_x)} training and {len(test_x)} test images in {root} ({info.source})")
    return 0


def _init_of(model: str, init: str, variant: str | None) -> str:
    """A run's init as listed: a Feature Ansatz CNN has no depthwise scheme, its init is its variant
    (small-normal or pytorch-default)."""
    return variant if variant and models.parse_spec(model)["kind"] == "cnn" else init


def cmd_runs_list(args) -> int:
    store = _store(args)
    if args.comparisons:
        items = store.list_comparisons()
        if args.json:
            print(json.dumps([vars(c) for c in items], indent=1))
            return 0
        rows = [[c.id, c.created, c.name or "", c.dataset, c.model, ",".join(c.variants),
                 ",".join(map(str, c.seeds)), c.n_runs, c.status] for c in items]
        print(format_table(["id", "created", "name", "dataset", "model", "variants", "seeds", "runs",
                            "status"], rows) if rows else f"no comparisons in {store.path}")
        return 0
    items = store.list()
    if args.json:
        print(json.dumps([vars(r) for r in items], indent=1))
        return 0
    rows = [[r.id, r.created, r.variant or r.name or "", r.dataset, r.model, _fmt(r.kernel_size, "d"),
             _fmt(r.depth, "d"), _init_of(r.model, r.init, r.variant), "yes" if r.freeze_filters else "no",
             r.seed, r.status, _fmt(r.test_acc), _fmt(r.wall_time, ".0f"), _fmt(r.comparison_id, "d", "")]
            for r in items]
    print(format_table(["id", "created", "variant/name", "dataset", "model", "k", "depth", "init", "frozen",
                        "seed", "status", "test acc %", "s", "comparison"], rows)
          if rows else f"no runs in {store.path}")
    return 0


def cmd_runs_show(args) -> int:
    store = _store(args)
    if args.comparison:
        print(format_comparison(store.get_comparison(args.id)))
        return 0
    run = store.get(args.id)
    c = run.config
    print(f"run {run.id}: {run.status} - {run.message}")
    init_name = _init_of(c.model, c.init, run.variant)
    print(f"{c.model} k={size_label(c.kernel_size)} p={size_label(c.patch_size)} on {c.dataset}; init {init_name}"
          f"{' (filters frozen)' if c.freeze_filters else ''}; seed {c.seed}; {c.epochs} epoch(s), "
          f"batch {c.batch_size}, lr {c.lr:g}; {run.device}, {run.precision}, {duration(run.wall_time, compact=True)}")
    h = run.history
    rows = [[i + 1, h["epoch_end_step"][i], _fmt(h["train_acc"][i]), _fmt(h["test_acc"][i]),
             _fmt(h["images_per_s"][i], ".0f")] for i in range(len(h["test_acc"]))]
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
    json_path, csv_path = _store(args).export(args.id, args.path)
    print(f"wrote {json_path} and {csv_path}", file=sys.stderr)
    return 0


def cmd_runs_delete(args) -> int:
    store = _store(args)
    for run_id in args.ids:
        if args.comparison:
            store.delete_comparison(run_id)
        else:
            store.delete(run_id)
    what = "comparison" if args.comparison else "run"
    print(f"deleted {what}(s) {', '.join(map(str, args.ids))}", file=sys.stderr)
    return 0


def _add_arch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", choices=sorted(set(models.CHECKPOINT_ARCHITECTURES.values())),
                        default="convmixer",
                        help="the checkpoint's architecture (a ConvMixer's sizes are read from the file)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="convcov", description="Covariance structure of convolutional filters.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compare", help="train inits against each other over seeds")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--dataset-param", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="dataset parameter (repeatable), e.g. noise=0.5")
    p.add_argument("--data-root", default=None)
    p.add_argument("--model", default="convmixer-64/6",
                   help="convmixer-W/D, cnn-W1,W2,..., or timm:NAME (e.g. timm:convnext_atto)")
    p.add_argument("--kernel-size", type=int, default=None,
                   help="depthwise kernel size (default: 9 for a ConvMixer, the model's own for timm and cnn models)")
    p.add_argument("--patch-size", type=int, default=None,
                   help="patch size (default: 2 for a ConvMixer, the model's own for timm models)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--schedule", default="onecycle")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--inits", type=_name_list, default=["default", "gaussian"],
                   help=f"comma-separated init schemes ({', '.join(init.SCHEMES)}); "
                        "the first is the reference")
    p.add_argument("--freeze", choices=FREEZE_MODES, default="none",
                   help="train the depthwise filters (none), freeze them (filters), or run both")
    p.add_argument("--sigma-first", type=float, default=None)
    p.add_argument("--sigma-last", type=float, default=None)
    p.add_argument("--learned-from", type=_learned_ref, default=None, metavar="SOURCE",
                   help="where the 'learned' init's covariances come from: a stored run's id, 'example' "
                        "(the bundled ConvMixer-64/8 trained on mnist5k; the default), set:NAME (saved by "
                        "`learned --save-set` or the Learned Covariances page) or a file written by "
                        "`learned --out`")
    p.add_argument("--seeds", type=_int_list, default=[0, 1, 2])
    p.add_argument("--device", default="auto")
    p.add_argument("--max-steps", type=int, default=None, help="cap on training steps per run")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for training (default: torch's choice, one per core)")
    p.add_argument("--compile", action="store_true",
                   help="train through torch.compile (pays off on GPUs for long runs; compile time is reported)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto: bf16 autocast on CUDA and on CPUs with AMX or AVX512-BF16, fp32 elsewhere")
    p.add_argument("--raw-bn-eval", action="store_true",
                   help="judge the raw eval-mode test accuracy, with the BatchNorm statistics that "
                        "training left, instead of statistics recomputed on training images after the "
                        "last step (how fast an init lets them settle; both are kept with every run)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the comparison as JSON")
    p.add_argument("--save", action="store_true", help="save the runs in the run store")
    p.add_argument("--name", default=None, help="name for the saved comparison")
    p.add_argument("--db", default=None, help="run store file (default $CONVCOV_HOME/runs.db)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("covariance", help="write the closed-form Gaussian covariance")
    p.add_argument("--kernel-size", type=int, required=True)
    p.add_argument("--sigma", type=float, required=True)
    p.add_argument("--view", choices=("flat", "tiled"), default="flat",
                   help="flat S[k*i+j, k*l+m] or the tiled k x k grid of k x k blocks")
    p.add_argument("--out", required=True, help="file ending in .npy, .pt or .safetensors")
    p.set_defaults(func=cmd_covariance)

    p = sub.add_parser("sample", help="draw filters from an init scheme or a covariance file")
    p.add_argument("--kernel-size", type=int, default=None, help="default 9, or the covariance's")
    p.add_argument("--scheme", choices=[s for s in init.SCHEMES if s != "learned"], default="gaussian")
    p.add_argument("--sigma", type=float, default=None, help="Gaussian sigma (default 1)")
    p.add_argument("--covariance", default=None, metavar="FILE", help="k^2 x k^2 covariance to sample from")
    p.add_argument("--variance", type=float, default=None,
                   help="mean per-weight variance (default 1/(3 k^2), PyTorch's depthwise init)")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="file ending in .npy, .pt or .safetensors")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("learned", help="learned covariances of a trained network: fitted sigma per layer, "
                                       "transfer, write, save for the Training Lab")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--run", type=int, default=None, metavar="RUN_ID", help="a stored run")
    source.add_argument("--checkpoint", default=None, metavar="FILE",
                        help="a state dict (.safetensors, or torch.save read with weights_only=True)")
    source.add_argument("--covariances", default=None, metavar="FILE",
                        help="covariances already learned: depth x k^2 x k^2 (.npy, .pt, .safetensors), as "
                             "--out or the Learned Covariances page's download writes them")
    _add_arch(p)
    p.add_argument("--kernel-size", type=int, default=None, help="transfer to this kernel size first")
    p.add_argument("--depth", type=int, default=None, help="transfer to this many layers first")
    p.add_argument("--out", default=None, help="write the covariances stacked (layers x k^2 x k^2): "
                                               "file ending in .npy, .pt or .safetensors")
    p.add_argument("--save-set", default=None, metavar="NAME",
                   help="save them as a named covariance set for the Training Lab's learned init")
    p.add_argument("--db", default=None, help="run store file (default $CONVCOV_HOME/runs.db)")
    p.set_defaults(func=cmd_learned)

    p = sub.add_parser("cnfa", help="the Feature Ansatz check: r(patch-AGOP, W^T W) per conv layer, trained "
                                    "vs at init, of a small CNN trained here or a stored run")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--run", type=_run_ref, default=None, metavar="RUN_ID",
                        help="analyse a stored run that kept its weights, or 'example' (default: train "
                             "a small CNN here with the options below)")
    source.add_argument("--checkpoint", default=None, metavar="FILE",
                        help="analyse your own checkpoint (safetensors or torch.save of a state dict; "
                             "weights-only loading) against the same architecture at PyTorch's default "
                             "init, on --dataset's test images")
    _add_arch(p)
    p.add_argument("--dataset", default="mnist5k",
                   help=f"the small CNN trains on {', '.join(fa.CNN_DATASETS)}; a checkpoint is analysed "
                        "on any dataset with its number of channels")
    p.add_argument("--dataset-param", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="dataset option, e.g. n_train=1000 for noisy-bars (repeatable)")
    p.add_argument("--noise", type=float, default=0.5, help="background noise std of the noisy datasets")
    p.add_argument("--layers", type=int, default=3, help="conv + ReLU + 2 x 2 max pooling blocks")
    p.add_argument("--width", type=int, default=32, help="channels of every conv layer")
    p.add_argument("--kernel-size", type=int, default=None,
                   help="every layer's kernel size (default: 5 x 5, then 3 x 3)")
    p.add_argument("--init", choices=("small", "default"), default="small",
                   help="small: N(0, 0.005²) first layer, N(0, 0.01²) after (seed 001); default: PyTorch's")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None, help="cap on training steps")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="training precision (fp32, as the Feature Ansatz page: bf16 cost 2-3 points of "
                        "accuracy from the small init)")
    p.add_argument("--images", type=int, default=128, help="test images for the AGOP")
    p.add_argument("--outputs", choices=analysis.OUTPUT_CHOICES, default="all",
                   help="gradients of every class score (exact) or of the predicted class only")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON")
    p.add_argument("--save", action="store_true",
                   help="save the trained CNN in the run store (the Feature Ansatz page lists it)")
    p.add_argument("--db", default=None, help="run store file (default $CONVCOV_HOME/runs.db)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_cnfa)

    p = sub.add_parser("frequency", help="filters in frequency: effective sizes and half-max frequency per "
                                         "layer, of an init scheme or a stored run")
    p.add_argument("--source", choices=fa.FREQUENCY_SOURCES, default="gaussian",
                   help="gaussian / default: sampled from that init scheme; learned: sampled from a run's "
                        "learned covariances; trained: a run's trained filters")
    network = p.add_mutually_exclusive_group()
    network.add_argument("--run", type=_run_ref, default=None, metavar="RUN_ID",
                         help="the run of the learned / trained sources (default: the bundled example)")
    network.add_argument("--checkpoint", default=None, metavar="FILE",
                         help="or your own network's checkpoint (safetensors or torch.save of a state "
                              "dict; weights-only loading)")
    _add_arch(p)
    p.add_argument("--kernel-size", type=int, default=9,
                   help="k of the sampled schemes (a network keeps its own)")
    p.add_argument("--sigma", type=float, default=2.0, help="sigma of the Gaussian closed form (pixels)")
    p.add_argument("--n", type=int, default=1024, help="filters sampled per layer")
    p.add_argument("--energy", type=float, default=0.9, help="energy share of the effective size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write the table and the radial profiles as JSON")
    p.add_argument("--db", default=None, help="run store file (default $CONVCOV_HOME/runs.db)")
    p.set_defaults(func=cmd_frequency)

    p = sub.add_parser("reproduce", help="test the papers' claims with small experiments; write a report")
    p.add_argument("--suite", choices=list(reproduce.SUITES), default="quick",
                   help="tiny: seconds, a smoke test; quick: about 10 minutes on 2 CPU cores; full: for a GPU")
    p.add_argument("--dataset", default=None, help="dataset of claims 1-4 (default: the suite's own)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="report folder (default $CONVCOV_HOME/reports/<suite>-<time>)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("download", help="fetch a torchvision dataset (CIFAR-10 and friends) into the data root")
    p.add_argument("name", help="dataset name, e.g. cifar10")
    p.add_argument("--data-root", default=None, help="folder for datasets (default $CONVCOV_DATA)")
    p.set_defaults(func=cmd_download)

    runs = sub.add_parser("runs", help="stored runs: list, show, export, delete")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    p = runs_sub.add_parser("list", help="list stored runs (or comparisons)")
    p.add_argument("--comparisons", action="store_true")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_runs_list)
    p = runs_sub.add_parser("show", help="show one run (or comparison)")
    p.add_argument("id", type=int)
    p.add_argument("--comparison", action="store_true", help="ID is a comparison id")
    p.set_defaults(func=cmd_runs_show)
    p = runs_sub.add_parser("export", help="write a run as JSON plus its history as CSV")
    p.add_argument("id", type=int)
    p.add_argument("path", help="JSON file to write; the CSV goes next to it")
    p.set_defaults(func=cmd_runs_export)
    p = runs_sub.add_parser("delete", help="delete runs (or comparisons with their runs)")
    p.add_argument("ids", type=int, nargs="+")
    p.add_argument("--comparison", action="store_true", help="IDs are comparison ids")
    p.set_defaults(func=cmd_runs_delete)
    for p in (runs_sub.choices.values()):
        p.add_argument("--db", default=None, help="run store file (default $CONVCOV_HOME/runs.db)")
    return parser


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _check_kernel_size_cap(args) -> None:
    """ValueError for a --kernel-size above ui.max_kernel_size(): a k x k filter's covariance is a
    k^2 x k^2 matrix, so k = 201 alone would be a 13 GB float64 file."""
    k, cap = getattr(args, "kernel_size", None), ui.max_kernel_size()
    if k is not None and k > cap:
        raise ValueError(f"--kernel-size {k} is above {cap}, the largest kernel size convcov accepts "
                         f"(a covariance of {k} x {k} filters is a {k * k:,} x {k * k:,} matrix); "
                         "set CONVCOV_MAX_KERNEL to allow more")


_ALLOCATION = re.compile(r"allocate (\d+) bytes|allocate ([\d.]+ [KMGT]i?B)", re.IGNORECASE)
_SIZE_FLAGS = ("n", "width", "batch_size", "kernel_size", "images")


def _out_of_memory(exc: BaseException, args) -> str | None:
    """One line for an allocation that failed (MemoryError, PyTorch's CPU or CUDA allocator), with the
    size asked for and the size flags this command has; None for any other error."""
    text = str(exc)
    if not (isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or "can't allocate memory" in text):
        return None
    found = _ALLOCATION.search(text)
    asked = "" if found is None else (f": tried to allocate {int(found.group(1)) / 1e9:,.1f} GB"
                                      if found.group(1) else f": tried to allocate {found.group(2)}")
    flags = [f"--{name.replace('_', '-')}" for name in _SIZE_FLAGS if getattr(args, name, None) is not None]
    return f"not enough memory{asked}" + (f"; try a smaller {' / '.join(flags)}" if flags else "")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 failure, 2 bad arguments or not enough memory,
    130 interrupted)."""
    args = None
    try:
        args = build_parser().parse_args(argv)
        _check_kernel_size_cap(args)
        return args.func(args)
    except (UsageError, ValueError, OSError) as exc:
        print(f"convcov: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nconvcov: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("CONVCOV_DEBUG"):
            raise
        if (message := _out_of_memory(exc, args)) is not None:
            print(f"convcov: error: {message}", file=sys.stderr)
            return 2
        print(f"convcov: failed: {type(exc).__name__}: {_one_line(exc)} (set CONVCOV_DEBUG=1 for details)",
              file=sys.stderr)
        return 1
