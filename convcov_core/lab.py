"""What the Training Lab and Learned Covariances pages compute, free of streamlit.

Training Lab: presets, a comparison (base config, variants, references, seeds) built from the
page's choices, its size and time estimate, curves from live progress events or saved runs, and
the results table. Learned Covariances: the per-layer covariances of a saved run or an uploaded
checkpoint, each layer's fitted sigma against the closed-form schedule, the closed form beside the
learned covariance, transfer to another kernel size and depth, and named covariance sets that the
Training Lab offers as the `learned` init ($CONVCOV_HOME/covariance_sets/<name>.safetensors).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import covariance, init, matrix_files, models, train
from .comparison_table import comparison_table
from .json_safe import json_safe
from .paths import convcov_home
from .text import duration

Tensor = torch.Tensor

#: How the depthwise filters are treated, as the page names it -> the CLI's --freeze mode.
FILTER_MODES = {"trained": "none", "frozen at init": "filters", "both (trained and frozen)": "both"}


# ---------------------------------------------------------------------------------------------
# Setups and presets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabSetup:
    """The Training Lab's choices. inits: init schemes to compare, the first is the reference;
    filters: a key of FILTER_MODES; n_seeds: runs per variant (seeds 0..n-1); sigma_first /
    sigma_last: the Gaussian scheme's depth schedule (None: init.default_sigmas); max_steps: cap
    on steps per run (None: whole epochs); precision: TrainConfig.precision."""

    dataset: str = "mnist5k"
    model: str = "convmixer-64/8"
    kernel_size: int = 15
    patch_size: int | None = 2
    inits: tuple = ("default", "gaussian")
    filters: str = "frozen at init"
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.01
    n_seeds: int = 2
    sigma_first: float | None = None
    sigma_last: float | None = None
    max_steps: int | None = None
    dataset_params: tuple = ()  # (name, value) pairs, e.g. (("n_train", 256),)
    precision: str = "auto"


@dataclass(frozen=True)
class Preset:
    """A named setup with what a visitor should expect from it, said plainly."""

    name: str
    setup: LabSetup
    expect: str
    fallback_dataset: str | None = None  # used where setup.dataset is not available on the server


QUICK_CPU = "Quick CPU demo: frozen filters"
LEARNED_FROZEN = "Frozen filters: learned vs Gaussian vs default"
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(QUICK_CPU, LabSetup(),
           "ConvMixer-64/8 with 15 × 15 filters on 5,000 MNIST digits, one epoch, the depthwise "
           "filters frozen at their init, 2 seeds: 4 runs of about 15 seconds each on 2 idle CPU cores "
           "(press Estimate time: a busy server is slower). With frozen filters the network can only "
           "use the spatial structure it was given, so the init decides the outcome: in two measured "
           "comparisons the Gaussian covariance init reached 47-60% test accuracy and the default "
           "init 12-18%, on every seed."),
    Preset(LEARNED_FROZEN, LabSetup(inits=("default", "gaussian", "learned"), n_seeds=3),
           "The quick demo with a third scheme: the covariances learned by the bundled example network "
           "(ConvMixer-64/8 with 9 × 9 filters trained on these digits), resized to 15 × 15: the "
           "paper's transfer from a small model to a larger kernel. 3 seeds, 9 runs of 15-25 seconds "
           "each on 2 CPU cores. Measured twice here (CLI and this page): learned 51-66%, Gaussian "
           "46-75%, default 10-18% test accuracy; the learned init matched the Gaussian one, with "
           "less spread, and beat the default on every seed."),
    Preset("Trained filters, 1 epoch: seed noise", LabSetup(filters="trained", n_seeds=3),
           "The same ConvMixer with its filters trained, 3 seeds (6 runs). In runs this short the "
           "seed matters more than the init: measured while planning, the default init reached "
           "63-84% and the Gaussian init 57-79%. Expect a verdict of 'within seed noise'; that is "
           "the honest answer at this budget."),
    Preset("Paper-like, GPU", LabSetup(dataset="cifar10", model="convmixer-256/8", kernel_size=9,
                                       filters="trained", epochs=20, batch_size=512, n_seeds=3),
           "ConvMixer-256/8 with 9 × 9 filters and 2 × 2 patches on CIFAR-10, 20 epochs, filters "
           "trained, 3 seeds: the kind of run where the paper reports a small, consistent gain for "
           "the covariance init. It needs a GPU, CIFAR-10 in the data root and a server that allows "
           "large jobs (6,000,000 training images; CONVCOV_MAX_JOB_SAMPLES).",
           fallback_dataset="textures"),
)}


def preset_setup(name: str, available: dict[str, bool]) -> tuple[LabSetup, str | None]:
    """(the preset's setup, a note) with the dataset swapped for the fallback when the server
    does not have it; available: data.available_datasets()."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    setup = preset.setup
    if available.get(setup.dataset) or preset.fallback_dataset is None:
        return setup, None
    note = (f"{setup.dataset} is not in this server's data root, so this preset uses "
            f"{preset.fallback_dataset} instead.")
    return dataclasses.replace(setup, dataset=preset.fallback_dataset), note


def matching_preset(setup: LabSetup, available: dict[str, bool]) -> str | None:
    """The name of the preset whose settings `setup` has, if any."""
    for name in PRESETS:
        if preset_setup(name, available)[0] == setup:
            return name
    return None


# ---------------------------------------------------------------------------------------------
# From a setup to a comparison
# ---------------------------------------------------------------------------------------------


@dataclass
class ComparisonPlan:
    """What train.compare (or JobManager.submit("compare", ...)) takes."""

    base: train.TrainConfig
    variants: dict
    references: dict
    seeds: list

    @property
    def n_runs(self) -> int:
        return len(self.variants) * len(self.seeds)

    def config(self, variant: str, seed: int | None = None) -> train.TrainConfig:
        """The full config of one run."""
        return self.base.replace(**self.variants[variant], seed=self.seeds[0] if seed is None else seed)


def plan_comparison(setup: LabSetup, learned: list[Tensor] | None = None) -> ComparisonPlan:
    """Variants named as the CLI names them ("gaussian", "gaussian-frozen", ...), each paired with
    the first init of its own kind; the Gaussian schedule goes only to the gaussian variants and
    the learned covariances only to the learned ones."""
    inits = list(setup.inits)
    if not inits:
        raise ValueError("pick at least one init scheme to run")
    for name in inits:
        init.get_scheme(name)
    if setup.filters not in FILTER_MODES:
        raise ValueError(f"filters must be one of: {', '.join(FILTER_MODES)}; got {setup.filters!r}")
    if "learned" in inits and not learned:
        raise ValueError("the learned init needs covariances: pick a saved run or a covariance set, "
                         "or make one on the Learned Covariances page")
    covariance.check_int(setup.n_seeds, "number of seeds", 1)
    variants, references = train.variants_for(inits, FILTER_MODES[setup.filters])
    for overrides in variants.values():
        if overrides["init"] == "gaussian":
            overrides.update(sigma_first=setup.sigma_first, sigma_last=setup.sigma_last)
        elif overrides["init"] == "learned":
            overrides["covariances"] = list(learned)
    base = train.TrainConfig(
        dataset=setup.dataset, dataset_params=dict(setup.dataset_params), model=setup.model,
        kernel_size=setup.kernel_size, patch_size=setup.patch_size, epochs=setup.epochs,
        batch_size=setup.batch_size, lr=setup.lr, max_steps=setup.max_steps,
        precision=setup.precision).validate()
    return ComparisonPlan(base, variants, references, list(range(setup.n_seeds)))


def run_images(config: train.TrainConfig) -> int:
    """Training images one run goes through (full batches of every epoch, or max_steps)."""
    batch, _, total = train.plan_steps(config, len(train.load_training_data(config)[1]))
    return batch * total


def check_model_fits(config: train.TrainConfig) -> None:
    """ValueError with a plain message unless the model builds for the dataset and takes its images
    (models.check_input_size, which train() runs too): the page checks before it starts the job."""
    *_, info = train.load_training_data(config)
    model = train.build_model_for(config.replace(init="default"), info)
    models.check_input_size(model, info.in_chans, info.image_size, train.model_label(config), config.dataset)


def kernel_reach_note(config: train.TrainConfig) -> str | None:
    """None when every depthwise filter can meet the image; else which layers' maps are too small
    for their filters (models.KernelReach): only the central min(k, 2n - 1) weights ever train, so
    the init of the others makes no difference. ValueError, as check_model_fits, for a model that
    does not take the dataset's images at all."""
    *_, info = train.load_training_data(config)
    model = train.build_model_for(config.replace(init="default"), info)
    reach = models.depthwise_reach(model, info.in_chans, info.image_size, train.model_label(config), config.dataset)
    short = [r for r in reach if r.used != r.kernel]
    if not short:
        return None
    runs: list[list[models.KernelReach]] = []  # consecutive layers with the same filters and maps
    for r in short:
        last = runs[-1][-1] if runs else None
        if last is not None and (last.layer + 1, last.side, last.kernel) == (r.layer, r.side, r.kernel):
            runs[-1].append(r)
        else:
            runs.append([r])
    parts = []
    for run in runs:
        first, (kh, kw), (uh, uw) = run[0], run[0].kernel, run[0].used
        layers = f"layer {first.layer} sees" if len(run) == 1 else f"layers {first.layer}-{run[-1].layer} see"
        window = "the centre weight" if uh * uw == 1 else f"the central {uh} × {uw} weights"
        parts.append(f"{layers} {first.side} × {first.side} maps and use{'s' if len(run) == 1 else ''} only "
                     f"{window} of {kh} × {kw} filters")
    return (f"{len(short)} of {len(reach)} depthwise layers have filters wider than their feature maps "
            f"can use on the {info.image_size} × {info.image_size} images of {config.dataset}: "
            + "; ".join(parts) + ". The other weights only ever meet zero padding: they get no gradient "
            "and their init makes no difference. A smaller kernel or patch size, or larger images, avoids it.")


def run_reach_warning(run: train.RunResult) -> str | None:
    """What kernel_reach_note means for a saved run's filters; None when every weight could train,
    or when the run's data is not here to tell."""
    try:
        note = kernel_reach_note(run.config)
    except (ValueError, OSError):
        return None
    return None if note is None else (f"This run's setup: {note} Outside that central window its filters, "
                                      "and their covariances, are the init, not what training learned.")


def estimate_seconds(plan: ComparisonPlan, n_steps: int = 3) -> float:
    """Wall time of the whole comparison on this device: train.estimate_time (a few measured steps
    and one evaluation) for the first variant of each filter mode, times the runs of that mode."""
    total = 0.0
    by_mode: dict[bool, list[str]] = {}
    for name, overrides in plan.variants.items():
        by_mode.setdefault(bool(overrides.get("freeze_filters")), []).append(name)
    for names in by_mode.values():
        total += train.estimate_time(plan.config(names[0]), n_steps) * len(names) * len(plan.seeds)
    return total


def progress_text(event: train.ProgressEvent | None, eta_s: float | None, elapsed_s: float,
                  batch_size: int) -> str:
    """One line under the progress bar: which run, step, training images per second so far (when
    the batch size is known, > 0), time left."""
    if event is None:
        return "Loading data and building the model…"
    where = f"Run {event.run_index + 1} of {event.n_runs}: {event.variant or 'run'}, seed {event.seed} · "
    if event.n_runs == 1 and event.variant is None:
        where = ""
    done_images = (event.run_index * event.total_steps + event.step) * batch_size
    rate = f" · {done_images / elapsed_s:,.0f} images/s" if batch_size > 0 and elapsed_s > 0 else ""
    left = f" · about {duration(eta_s)} left" if eta_s is not None else ""
    return f"{where}step {event.step} of {event.total_steps}{rate}{left}"


# ---------------------------------------------------------------------------------------------
# Curves: live from progress events, or from saved runs
# ---------------------------------------------------------------------------------------------


@dataclass
class Curve:
    """One run's training loss per step and test accuracy per epoch; `group` names the colour
    (variant, prefixed by the comparison for history overlays)."""

    group: str
    variant: str
    seed: int
    steps: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    epochs: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    status: str = "running"

    @property
    def label(self) -> str:
        return f"{self.group}, seed {self.seed}"


def _finite(value):
    return value if value is not None and math.isfinite(value) else None


def curves_from_events(events) -> list[Curve]:
    """Curves of every run a job has reported so far, in the order the runs started."""
    curves: dict[tuple, Curve] = {}
    for e in events:
        key = (e.run_index, e.variant, e.seed)
        if key not in curves:
            name = e.variant or "run"
            curves[key] = Curve(name, name, e.seed if e.seed is not None else 0)
        c = curves[key]
        if e.kind == "step":
            c.steps.append(e.step)
            c.losses.append(_finite(e.loss))
        elif e.kind == "epoch" and e.test_acc is not None:
            c.epochs.append(e.epoch)
            c.test_acc.append(e.test_acc)
        elif e.kind == "done":
            c.status = e.status or "ok"
    return list(curves.values())


def curves_from_runs(runs, prefix: str = "") -> list[Curve]:
    """Curves of saved RunResults; group = prefix + variant (or init)."""
    out = []
    for run in runs:
        h = run.history
        name = run.variant or run.config.init
        out.append(Curve(f"{prefix}{name}", name, run.config.seed, list(h.get("step", [])),
                         [_finite(v) for v in h.get("loss", [])],
                         list(range(1, len(h.get("test_acc", [])) + 1)), list(h.get("test_acc", [])),
                         run.status))
    return out


def curves_csv(curves: list[Curve]) -> str:
    """CSV with one row per step (loss) and per epoch (test accuracy) of every curve."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["group", "variant", "seed", "step", "loss", "epoch", "test_acc"])
    for c in curves:
        for step, loss in zip(c.steps, c.losses):
            writer.writerow([c.group, c.variant, c.seed, step, "" if loss is None else loss, "", ""])
        for epoch, acc in zip(c.epochs, c.test_acc):
            writer.writerow([c.group, c.variant, c.seed, "", "", epoch, acc])
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


def results_rows(cmp: train.ComparisonResult) -> list[dict]:
    """The results table (comparison_table) as one dict per variant, for a dataframe."""
    return comparison_table(cmp).records()


def problem_runs(cmp: train.ComparisonResult) -> list[str]:
    """One line per run that did not finish normally (diverged), with what happened."""
    return [f"{name}, seed {run.config.seed}: {run.status}: {run.message}"
            for name, runs in cmp.runs.items() for run in runs if run.status not in ("ok", "cancelled")]


def verdict_text(cmp: train.ComparisonResult) -> str:
    """The verdict sentences, with a note when the comparison was cancelled part way."""
    text = cmp.verdict or "Only one variant: nothing to compare against."
    if cmp.status == "cancelled":
        finished = sum(len(runs) for runs in cmp.runs.values())
        text += f" (Cancelled: {finished} of {len(cmp.variants) * len(cmp.seeds)} runs finished.)"
    return text


def verdict_is_clear(cmp: train.ComparisonResult) -> bool:
    """True when stats.paired_verdict names a winner for every paired variant."""
    paired = [r for r in cmp.rows if r["reference"] is not None]
    return bool(paired) and all(r["winner"] is not None for r in paired)


def setup_line(cmp: train.ComparisonResult) -> str:
    """Model, data, training budget, seeds, device and wall time of a comparison, in one line."""
    c = cmp.base_config
    device = train.device_and_precision(cmp)
    stop = f" (stopped after {c.max_steps} steps)" if c.max_steps else ""
    return (f"{c.model}, k = {train.size_label(c.kernel_size)}, patch {train.size_label(c.patch_size)} on {c.dataset}; "
            f"{c.epochs} epoch(s){stop}, batch {c.batch_size}, lr {c.lr:g}; "
            f"seeds {', '.join(map(str, cmp.seeds))}; device {device}; {duration(cmp.wall_time)} in all")


# ---------------------------------------------------------------------------------------------
# Learned covariances: from runs or checkpoints, fitted sigma, closed form, transfer
# ---------------------------------------------------------------------------------------------


@dataclass
class LearnedSet:
    """Per-layer learned covariances (k^2 x k^2, float64) with their layer names and origin."""

    source: str
    layer_names: list
    covariances: list

    @property
    def kernel_size(self) -> int:
        return covariance.kernel_size_of(self.covariances[0])

    @property
    def depth(self) -> int:
        return len(self.covariances)


def learned_from_run(run: train.RunResult, name: str | None = None) -> LearnedSet:
    """The run's per-layer covariances; its source reads "<name or run #id>: model on dataset, ..."."""
    if not run.covariances:
        why = ("its filters were not finite at the end" if run.layer_names
               else f"{run.config.model} has no depthwise filters")
        raise ValueError(f"run {run.id} saved no covariances ({why})")
    names = run.layer_names or [f"layer {i + 1}" for i in range(len(run.covariances))]
    acc = f", test accuracy {run.final['test_acc']:.1f}%" if run.final.get("test_acc") is not None else ""
    return LearnedSet(f"{name or f'run #{run.id}'}: {run.config.model} on {run.config.dataset}, init {run.config.init}"
                      f"{' (frozen)' if run.config.freeze_filters else ''}{acc}",
                      list(names), [torch.as_tensor(S, dtype=torch.float64) for S in run.covariances])


def learned_from_state_dict(state: dict[str, Tensor], architecture: str, source: str) -> LearnedSet:
    """The checkpoint's model (models.model_from_state_dict: the architecture at the checkpoint's
    sizes, weights loaded strictly) and the centered covariance of each depthwise layer's filters."""
    model, layout = models.model_from_state_dict(state, architecture)
    layers = init.depthwise_convs(model)
    if not layers:
        raise ValueError(f"{layout['spec']} has no depthwise filters to analyse")
    weights = [conv.weight.detach().float() for _, conv in layers]
    if not all(torch.isfinite(w).all() for w in weights):
        raise ValueError("the checkpoint's depthwise filters contain NaN or infinite values")
    k = layout["kernel_size"]
    return LearnedSet(f"{source} ({layout['spec']}, {k} × {k} filters)",
                      [name for name, _ in layers], [covariance.empirical(w) for w in weights])


def learned_from_checkpoint(data: bytes, filename: str, architecture: str, *,
                            max_bytes: int = models.DEFAULT_MAX_CHECKPOINT_BYTES) -> LearnedSet:
    """Learned covariances of an uploaded checkpoint (models.read_checkpoint_bytes: no code in the
    file runs). Every problem is a ValueError to show."""
    state = models.read_checkpoint_bytes(data, filename, max_bytes=max_bytes)
    return learned_from_state_dict(state, architecture, filename)


def covariances_from_matrix(stack: Tensor, origin: str) -> list[Tensor]:
    """Per-layer covariances from one tensor: depth x k^2 x k^2 (what `learned --out` and the Learned
    Covariances page's download write) or one k^2 x k^2 matrix. ValueError naming what is wrong."""
    stack = torch.as_tensor(stack).to(torch.float64)
    if stack.dim() == 2:
        stack = stack.unsqueeze(0)
    if stack.dim() != 3 or stack.shape[0] == 0:
        raise ValueError(f"{origin}: expected depth x k^2 x k^2 covariances (as `learned --out` writes) or "
                         f"one k^2 x k^2 matrix, got shape {tuple(stack.shape)}")
    return [covariance.validate_covariance(S) for S in stack]


def non_psd_layers(covariances: list[Tensor]) -> list[int]:
    """1-based layers that are not positive semi-definite: a transfer (and so the learned init)
    uses their nearest PSD matrix."""
    return [layer for layer, S in enumerate(covariances, start=1) if not covariance.is_psd(S)]


def learned_from_file_covariances(covariances: list[Tensor], filename: str) -> LearnedSet:
    """A LearnedSet of covariances read from a file, its layers named "layer 1", "layer 2", ..."""
    return LearnedSet(f"{filename} (a covariance file)", [f"layer {i + 1}" for i in range(len(covariances))],
                      covariances)


def learned_from_matrix_file(data: bytes, filename: str, *,
                             max_bytes: int = matrix_files.DEFAULT_MAX_MATRIX_BYTES) -> LearnedSet:
    """Covariances a user uploads as a file (.npy, .pt read weights-only, .safetensors; see
    covariances_from_matrix), one per layer."""
    stack = matrix_files.read_matrix(data, filename, max_bytes=max_bytes)
    return learned_from_file_covariances(covariances_from_matrix(stack, filename), filename)


def max_upload_bytes(environ=None, *, ceiling_mb: float | None = None) -> int:
    """Largest checkpoint accepted: $CONVCOV_MAX_CHECKPOINT_MB megabytes (MiB), default 512, and at
    most `ceiling_mb` (the web server's own upload cap, which refuses larger files first)."""
    raw = (environ if environ is not None else os.environ).get("CONVCOV_MAX_CHECKPOINT_MB", "").strip()
    limit = models.DEFAULT_MAX_CHECKPOINT_BYTES
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise ValueError(f"CONVCOV_MAX_CHECKPOINT_MB must be a number > 0, got {raw!r}")
        limit = int(value * 1024 * 1024)
    return limit if ceiling_mb is None else min(limit, int(ceiling_mb * 1024 * 1024))


def layer_fits(covariances: list[Tensor]) -> list[dict]:
    """Per layer: the Gaussian closed form's best sigma and its Pearson r (covariance.fit_sigma)."""
    fits = []
    for i, S in enumerate(covariances):
        sigma, r = covariance.fit_sigma(S)
        fits.append({"layer": i + 1, "sigma": sigma, "r": r})
    return fits


def fitted_schedule(fits: list[dict]) -> tuple[float, float]:
    """(sigma_first, sigma_last) of the least-squares straight line through the fitted sigmas over
    the layers, floored at 0.1: what to give the Gaussian init to imitate these layers."""
    n = len(fits)
    if n == 0:
        raise ValueError("no layers to fit")
    ys = [f["sigma"] for f in fits]
    if n == 1:
        return max(ys[0], 0.1), max(ys[0], 0.1)
    xs = list(range(n))
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return max(my - slope * mx, 0.1), max(my + slope * (n - 1 - mx), 0.1)


def closed_form_schedule(kernel_size: int, depth: int) -> list[float]:
    """The Gaussian init's default sigma per layer: init.default_sigmas(k) spread over the depth."""
    return covariance.depth_schedule(*init.default_sigmas(kernel_size), depth)


def offset_profile(S: Tensor) -> Tensor:
    """Average covariance of pixel pairs at each offset, divided by the mean variance:
    P[di + k - 1, dj + k - 1] = mean over (i, j) of B[i, j, i + di, j + dj] / mean(diag S), for
    offsets -k < di, dj < k, averaged over the pixels (i, j) where (i + di, j + dj) is in the filter.
    For the Gaussian closed form it is exp(-(di^2 + dj^2) / 2 sigma^2) exactly; for a learned
    covariance it is the smooth bump the tiled view shows once per pixel, with the noise averaged."""
    S = covariance.normalize_trace(torch.as_tensor(S, dtype=torch.float64))
    k = covariance.kernel_size_of(S)
    B = covariance.to_blocks(S)
    idx = torch.arange(k)
    out = torch.zeros(2 * k - 1, 2 * k - 1, dtype=torch.float64)
    for di in range(-k + 1, k):
        rows = idx[(idx + di >= 0) & (idx + di < k)]
        for dj in range(-k + 1, k):
            cols = idx[(idx + dj >= 0) & (idx + dj < k)]
            i, j = torch.meshgrid(rows, cols, indexing="ij")
            out[di + k - 1, dj + k - 1] = B[i, j, i + di, j + dj].mean()
    return out


def closed_form_beside(S: Tensor, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
    """(learned, closed form, learned - closed form), both scaled to unit mean diagonal."""
    learned = covariance.normalize_trace(torch.as_tensor(S, dtype=torch.float64))
    closed = covariance.gaussian(covariance.kernel_size_of(learned), sigma)
    return learned, closed, learned - closed


# ---------------------------------------------------------------------------------------------
# Named covariance sets: "use as init"
# ---------------------------------------------------------------------------------------------

_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,59}")


@dataclass(frozen=True)
class CovarianceSetInfo:
    name: str
    kernel_size: int
    depth: int
    source: str


def covariance_set_label(info: CovarianceSetInfo) -> str:
    """How the Training Lab lists a set."""
    return f"set: {info.name} ({info.kernel_size} × {info.kernel_size}, {info.depth} layers)"


def covariance_sets_dir() -> Path:
    return convcov_home() / "covariance_sets"


def _set_path(name: str) -> Path:
    name = str(name).strip()
    if not _SET_NAME.fullmatch(name):
        raise ValueError("a covariance set name is 1-60 letters, digits, spaces, '.', '_' or '-', "
                         f"starting with a letter or digit; got {name!r}")
    return covariance_sets_dir() / f"{name}.safetensors"


def save_covariance_set(name: str, covariances: list[Tensor], *, source: str) -> Path:
    """Save per-layer covariances (one k^2 x k^2 matrix per layer) as safetensors with their origin;
    an existing set of that name is replaced."""
    from safetensors.torch import save_file

    if not covariances:
        raise ValueError("no covariances to save")
    checked = [covariance.validate_covariance(torch.as_tensor(S, dtype=torch.float64)) for S in covariances]
    path = _set_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"layer_{i:03d}": S.contiguous() for i, S in enumerate(checked)}
    meta = {"source": source, "kernel_size": str(covariance.kernel_size_of(checked[0])),
            "depth": str(len(checked))}
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial), metadata=meta)
    partial.replace(path)
    return path


def list_covariance_sets() -> list[CovarianceSetInfo]:
    """Saved covariance sets, by name; unreadable files are skipped."""
    from safetensors import safe_open

    found = []
    folder = covariance_sets_dir()
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            found.append(CovarianceSetInfo(path.stem, int(meta["kernel_size"]), int(meta["depth"]),
                                           meta.get("source", "")))
        except Exception:  # a damaged or foreign file in the folder is not offered
            continue
    return found


def load_covariance_set(name: str) -> list[Tensor]:
    """The per-layer covariances of a saved set, first layer first."""
    from safetensors.torch import load_file

    path = _set_path(name)
    if not path.is_file():
        raise ValueError(f"no covariance set named {name!r}")
    tensors = load_file(str(path))
    return [covariance.validate_covariance(tensors[key].to(torch.float64)) for key in sorted(tensors)]


def run_dict(run: train.RunResult) -> dict:
    """A saved run as plain data: config, metrics, history and each layer's covariance."""
    return {"id": run.id, "variant": run.variant, "status": run.status, "message": run.message,
            "device": run.device, "wall_time": run.wall_time, "config": run.config.to_dict(),
            "final": run.final, "history": run.history, "layer_names": run.layer_names,
            "covariances": {name: S.tolist() for name, S in zip(run.layer_names, run.covariances)}}


def history_json(comparisons: list, runs: list) -> str:
    """Comparisons (configs, table rows, verdicts, every run's history) and single runs (with
    their covariances) as one strict JSON document."""
    doc = {"comparisons": [{"id": c.id, **c.to_dict()} for c in comparisons],
           "runs": [run_dict(r) for r in runs]}
    return json.dumps(json_safe(doc), allow_nan=False)
