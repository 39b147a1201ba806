"""The Training Lab's presenter: presets and what a visitor should expect of them, the regime a
setup trains in (convcov_core.regime), a comparison (base config, variants, references, seeds) built
from the page's choices, its size and time estimate, progress text, curves from live progress events
or saved runs, the results table and verdict (convcov_core.comparison_table, stats), and the history
export. No streamlit here, so it can be tested without a page.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from dataclasses import dataclass, field

import torch

from convcov_core import compare, init, models, regime, throughput, train, work
from convcov_core.compare import ComparisonPlan
from convcov_core.comparison_jobs import InterruptedJob
from convcov_core.comparison_table import comparison_table
from convcov_core.json_safe import json_safe
from convcov_core.learned_sets import CovarianceSetInfo
from convcov_core.text import duration
from convcov_core.validation import whole_number

from . import caps

Tensor = torch.Tensor

#: How the depthwise filters are treated, as the page names it -> the CLI's --freeze mode.
FILTER_MODES = {"trained": "none", "frozen at init": "filters", "both (trained and frozen)": "both"}


# ---------------------------------------------------------------------------------------------
# Setups and presets
# ---------------------------------------------------------------------------------------------


#: What every Lab run trains unless a preset or the visitor changes it: ConvMixer-64/8 with 9 x 9
#: filters (on mnist5k's 14 x 14 maps) for one epoch; everything else is TrainConfig's default.
LAB_TRAINING = train.TrainConfig(model="convmixer-64/8", kernel_size=9, epochs=1)


def lab_training(**changes) -> train.TrainConfig:
    """LAB_TRAINING with some fields changed (TrainConfig.replace: unknown names are refused)."""
    return LAB_TRAINING.replace(**changes)


@dataclass(frozen=True)
class LabSetup:
    """The Training Lab's choices. training: the config every run shares (dataset, model, sizes,
    budget, precision); inits: init schemes to compare, the first is the reference; filters: a key
    of FILTER_MODES; n_seeds: runs per variant (seeds 0..n-1); sigma_first / sigma_last: the
    σ schemes' depth schedule (None: init.default_sigmas); ensemble: the runs train together
    as one grouped network (compare.compare), else one after another (None: where ensemble.pays_off)."""

    training: train.TrainConfig = field(default_factory=lab_training)
    inits: tuple = ("default", "gaussian")
    filters: str = "frozen at init"
    n_seeds: int = 2
    sigma_first: float | None = None
    sigma_last: float | None = None
    ensemble: bool | None = None


@dataclass(frozen=True)
class Preset:
    """A named setup with what a visitor should expect from it, said plainly."""

    name: str
    setup: LabSetup
    expect: str
    fallback_dataset: str | None = None  # used where the setup's dataset is not available on the server
    took_s: float | None = None  # wall seconds of the whole preset where PRESET_TIMES_WHERE says (None: not run there)


#: Where and how Preset.took_s was measured.
PRESET_TIMES_WHERE = ("the development machine's 2 CPU cores (AMD EPYC, nothing else running; "
                      "benchmarks/lab_presets.py, 2026-12-07)")
QUICK_CPU = "Quick CPU demo: frozen filters"
LEARNED_FROZEN = "Frozen filters: learned vs Gaussian vs default"
TRAINED_SHORT = "Trained filters, 1 epoch: default vs Gaussian"
PEER_FROZEN = "Frozen filters: Gaussian vs impulse vs default"
VIT_MIMETIC = "Small ViT: default vs mimetic attention init"
NIFF_TRAINED = "NIFF filters (seed 002): as large as the map, from a frequency MLP"
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(QUICK_CPU, LabSetup(n_seeds=3),
           "The depthwise filters frozen at their init, 3 seeds: 6 runs (Estimate time measures them on "
           "this machine). Test accuracy is measured after recomputing the BatchNorm statistics on training "
           "images. Measured here for these seeds (reports/init_scan, the k = 9 row): default 88.3 ± 2.6 %, "
           "Gaussian 91.8 ± 0.6 %, Gaussian ahead on 3 of 3 seeds but no clear winner (95% interval of the "
           "difference −2.7 to +9.7 points; with 5 seeds +2.7, −0.0 to +5.4). Open \"Raw eval-mode "
           "accuracy\" under the results: with the statistics training left, Gaussian reached 62 % and "
           "default 32 %. That gap is how fast the BatchNorm statistics settle in one short epoch, not "
           "what the frozen filters can represent.",
           took_s=26.6),
    Preset(LEARNED_FROZEN, LabSetup(lab_training(kernel_size=15), inits=("default", "gaussian", "learned"),
                                    n_seeds=3),
           "Frozen filters, as in the quick demo but 15 × 15, with a third scheme: the covariances learned "
           "by the bundled example network (ConvMixer-64/8 with 9 × 9 filters trained on these digits), "
           "resized to 15 × 15: the paper's transfer from a small model to a larger kernel. 3 seeds, "
           "9 runs. Measured here: "
           "default 87.4 ± 0.7 %, Gaussian 87.2 ± 1.6 %, learned 88.7 ± 1.2 %: no clear winner "
           "(learned - default +1.4 points, 95% interval -3.3 to +6.0). Raw eval-mode accuracy: "
           "13.6, 56.2 and 58.5 %.",
           took_s=50.6),
    Preset(PEER_FROZEN, LabSetup(lab_training(model="convmixer-64/6", kernel_size=15),
                                 inits=("default", "gaussian", "impulse"), n_seeds=5),
           "The covariance init against a peer's structured init: impulse filters, each a single pixel "
           "at a random position (Zheng, Li & Lucey 2024), frozen. ConvMixer-64/6 with 15 × 15 filters, "
           "one epoch, 5 seeds: 15 runs. Measured here (the CLI's compare, docs/results.md): default "
           "85.8 ± 2.1 %, Gaussian 89.5 ± 0.8 % (+3.7 points, 95% interval +0.5 to +6.9, 5 of 5 seeds: "
           "Gaussian better), impulse 84.7 ± 1.3 % (−1.1, −3.5 to +1.3: no clear winner). Raw eval-mode "
           "accuracy: 21.0, 54.2 and 28.5 %. The same run's delta-orthogonal filters (the identity: no "
           "spatial mixing at all once frozen) reached 33.4 %.",
           took_s=67.0),
    Preset(VIT_MIMETIC, LabSetup(lab_training(model=models.MODEL_PRESETS["timm-vit-4x64"][0], kernel_size=None,
                                              patch_size=7, epochs=2, batch_size=64, lr=0.001),
                                 inits=("default", "mimetic"), filters="trained", n_seeds=3),
           "timm's ViT-Tiny cut to 4 blocks of width 64 with one head, 7 × 7 patches, on 5,000 MNIST digits, "
           "2 epochs (124 steps of 64, lr 0.001), 3 seeds: 6 runs. Only the attention weights differ at init: "
           "timm's own (std 0.02) or mimetic, as the reference code builds it (W_q W_kᵀ ≈ 0.7 Z/√d + 0.7 I; "
           "per layer one 0.4 Z/√d − 0.4 I factored into the value and projection weights, so W_v W_proj "
           "starts with diagonal −0.4 and off-diagonal std × √d 0.28, not 0.4). "
           "Measured here (the CLI's compare, docs/results.md, 2026-12-07): default 52.3 ± 0.5 %, mimetic "
           "41.9 ± 1.8 % (−10.4 points, 95% interval −14.9 to −5.9, 0 of 3 seeds ahead): default better; "
           "with seeds 3 and 4 too, −7.1 points (−13.0 to −1.2). A ViT this short "
           "of data and steps is far from trained (ConvMixers reach 85-92 % here), and its attention "
           "products barely move in 124 steps; see them under Learned Covariances, *Attention of a saved "
           "ViT run*, for runs saved with `compare --save --keep-weights`.",
           took_s=26.2),
    Preset(TRAINED_SHORT, LabSetup(filters="trained", n_seeds=5),
           "The quick demo's ConvMixer with its filters trained, 5 seeds (10 runs). Measured here "
           "(reports/init_scan, the k = 9 row): default 93.0 ± 1.1 %, Gaussian 92.0 ± 1.0 %: the default "
           "init was ahead by 1.1 points (95% interval 0.1 to 2.0, 4 of 5 seeds). On these digits, at this "
           "budget, the covariance init does not help trained filters.",
           took_s=58.1),
    Preset(NIFF_TRAINED, LabSetup(lab_training(model=models.MODEL_PRESETS["convmixer-64/8-niff"][0],
                                               kernel_size=15),
                                  inits=("default",), filters="trained", n_seeds=3),
           "ConvMixer-64/8 with NIFF filters (Grabinski, Keuper & Keuper 2024): each depthwise filter is as "
           "large as the 14 × 14 map, the response of a small MLP (2-8-4-64) over frequencies, trained one "
           "epoch from PyTorch's init, 3 seeds: 3 runs. Measured here (reports/niff, docs/results.md): "
           "52.0 ± 2.4 %, against 92.2 ± 0.3 % for the same ConvMixer with 15 × 15 filters; after three "
           "epochs of ConvMixer-64/4 NIFF trails by 11.5 points. Open a run under Learned Covariances: the "
           "central 15 × 15 crops of its filters hold most of their variance on the centre pixel and do not "
           "fit the Gaussian closed form. As the frozen init of 15 × 15 filters (*Use as init*) those crops "
           "reached 54.1 ± 4.2 %, 31.8 points below the default init (5 seeds, reports/niff/as_init.json).",
           took_s=47.1),
    Preset("Paper-like, GPU", LabSetup(lab_training(dataset="cifar10", model="convmixer-256/8", kernel_size=9,
                                                    epochs=20, batch_size=512), filters="trained", n_seeds=3),
           "ConvMixer-256/8 with 9 × 9 filters and 2 × 2 patches on CIFAR-10, 20 epochs, filters "
           "trained, 3 seeds: the kind of run where the paper reports a small, consistent gain for "
           "the covariance init. It needs a GPU, CIFAR-10 in the data root and a server that allows "
           "large jobs (6,000,000 training images; CONVCOV_MAX_JOB_SAMPLES).",
           fallback_dataset="textures"),
)}


def preset_time_text(preset: Preset) -> str | None:
    """How long the preset took where it was timed, or None where it was not."""
    if preset.took_s is None:
        return None
    return (f"On {PRESET_TIMES_WHERE} this preset took about {duration(preset.took_s)}. With other work "
            "on the same cores it takes longer; the line under the plan says how long runs like these took "
            "on this server.")


def preset_setup(name: str, available: dict[str, bool]) -> tuple[LabSetup, str | None]:
    """(the preset's setup, a note) with the dataset swapped for the fallback when the server
    does not have it; available: data.available_datasets()."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    setup = preset.setup
    if available.get(setup.training.dataset) or preset.fallback_dataset is None:
        return setup, None
    note = (f"{setup.training.dataset} is not in this server's data root, so this preset uses "
            f"{preset.fallback_dataset} instead.")
    return dataclasses.replace(setup, training=setup.training.replace(dataset=preset.fallback_dataset)), note


def matching_preset(setup: LabSetup, available: dict[str, bool]) -> str | None:
    """The name of the preset whose settings `setup` has, if any (training the runs together or not
    leaves the numbers as they are: it does not count)."""
    for name in PRESETS:
        if preset_setup(name, available)[0] == dataclasses.replace(setup, ensemble=None):
            return name
    return None


def regime_text(config: train.TrainConfig) -> tuple[str, str | None]:
    """(what `config` trains in, one line from regime.regime_of; what its filters being wider than their
    feature maps means, or None). ValueError, as regime_of, for a model that does not take the images."""
    r = regime.regime_of(config)
    statement = f"Regime: {r.describe()}."
    if not r.wider_than_map:
        return statement, None
    k, n = r.kernel, r.map_side
    return statement, (
        f"The filters are wider than the map: {k} × {k} filters on {n} × {n} feature maps. A filter centred "
        "on the map already sees the whole image in one layer, and wherever it sits, part of it lies on the "
        "zero padding around the map. So this comparison tests a regime unlike the paper's, where a filter "
        f"sees only part of the map: {regime.PAPER_REGIME}. A kernel size of at most {n}, or a smaller patch "
        "size, avoids it.")


# ---------------------------------------------------------------------------------------------
# From a setup to a comparison
# ---------------------------------------------------------------------------------------------


def offered_schemes(depthwise: bool, niff: bool, has_sources: bool) -> list[str]:
    """The schemes a model can start from, in registry order: a NIFF ConvMixer only the native default
    (its filters come from MLPs); a model without depthwise filters (a ViT) the native one and the
    model-level inits; others every filter scheme, those that need learned covariances only where
    there are some."""
    schemes = [init.get_scheme(name) for name in init.scheme_names()]
    return [s.name for s in schemes
            if (s.native if niff else s.applies_to(depthwise) and (has_sources or not s.needs_source))]


def plan_comparison(setup: LabSetup, learned: list[Tensor] | None = None) -> ComparisonPlan:
    """Variants named as the CLI names them ("gaussian", "gaussian-frozen", ...), each paired with
    the first init of its own kind; each variant gets what its scheme reads (Scheme.reads): the σ
    schedule, or the learned covariances."""
    inits = list(setup.inits)
    if not inits:
        raise ValueError("pick at least one init scheme to run")
    if setup.filters not in FILTER_MODES:
        raise ValueError(f"filters must be one of: {', '.join(FILTER_MODES)}; got {setup.filters!r}")
    if (sourced := init.needing_source(inits)) and not learned:
        raise ValueError(f"the {sourced[0]} init needs covariances: pick a saved run or a covariance set, "
                         "or make one on the Learned Covariances page")
    whole_number(setup.n_seeds, "number of seeds", 1)
    variants, references = compare.variants_for(inits, FILTER_MODES[setup.filters])
    given = {"sigma_first": setup.sigma_first, "sigma_last": setup.sigma_last, "covariances": list(learned or [])}
    for overrides in variants.values():
        overrides.update({name: given[name] for name in init.get_scheme(overrides["init"]).reads})
    base = setup.training.replace(dataset_params=dict(setup.training.dataset_params)).validate()
    return ComparisonPlan(base, variants, references, list(range(setup.n_seeds)), setup.ensemble)


def work_notes(plan: ComparisonPlan, max_images: int, max_tflop: int,
               timings: list = ()) -> tuple[str, list[str]]:
    """What a comparison will run and how long runs like these took here (markdown; timings:
    RunStore.timings, see throughput.stored_estimate), and a warning for each of the server's caps it exceeds."""
    images, tflop = plan_work(plan)
    estimate = throughput.stored_estimate(plan.run_configs(), list(timings))
    summary = (f"**{plan.n_runs} run{'s' if plan.n_runs > 1 else ''}:** {', '.join(plan.variants)} × seed(s) "
               f"{', '.join(map(str, plan.seeds))}; {caps.work_line(images, tflop)} in all. "
               f"{caps.stored_time_line(estimate)}")
    return summary, caps.cap_warnings("This comparison", images, tflop, max_images, max_tflop)


def plan_work(plan: ComparisonPlan) -> tuple[int, float]:
    """(training images, TFLOP) of the whole comparison: work.images_per_run and work.run_flops of
    its base config times its runs (the variants change filters, not shapes)."""
    return work.images_per_run(plan.base) * plan.n_runs, work.run_flops(plan.base) * plan.n_runs / 1e12


def estimate_seconds(plan: ComparisonPlan, n_steps: int = 3) -> float:
    """Wall time of the whole comparison on this device (compare.compare_seconds: with the ensemble,
    a few steps of the runs trained together; else of the first variant of each filter mode, times
    the runs of that mode)."""
    return compare.compare_seconds(plan.base, plan.variants, plan.seeds, ensemble=plan.ensemble, n_steps=n_steps)


def progress_text(event: train.ProgressEvent | None, eta_s: float | None, elapsed_s: float,
                  batch_size: int) -> str:
    """One line under the progress bar: which run, step, training images per second so far (when
    the batch size is known, > 0), time left."""
    if event is None:
        return "Loading data and building the model…"
    where = f"Run {event.run_index + 1} of {event.n_runs}: {event.variant or 'run'}, seed {event.seed} · "
    if event.together > 1:
        where = f"Runs {event.group.start + 1}–{event.group.stop} of {event.n_runs}, trained together · "
    elif event.n_runs == 1 and event.variant is None:
        where = ""
    done_images = event.fraction_done() * event.n_runs * event.total_steps * batch_size
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


def results_rows(cmp: compare.ComparisonResult) -> list[dict]:
    """The results table (comparison_table) as one dict per variant, for a dataframe."""
    return comparison_table(cmp).records()


def problem_runs(cmp: compare.ComparisonResult) -> list[str]:
    """One line per run that did not finish normally (diverged), with what happened."""
    return [f"{name}, seed {run.config.seed}: {run.status}: {run.message}"
            for name, runs in cmp.runs.items() for run in runs if run.status not in ("ok", "cancelled")]


def verdict_text(cmp: compare.ComparisonResult) -> str:
    """The verdict sentences, with a note when the comparison did not run to its end (cancelled,
    interrupted, failed, or still running)."""
    text = cmp.verdict or "Only one variant: nothing to compare against."
    if cmp.status != "ok":
        finished = sum(len(runs) for runs in cmp.runs.values())
        text += f" ({cmp.status.capitalize()}: {finished} of {len(cmp.variants) * len(cmp.seeds)} runs finished.)"
    return text


def interrupted_text(job: InterruptedJob) -> str:
    """What the Lab says of a comparison job that stopped with the server."""
    record = job.record
    return (f"**Interrupted:** {record.label} (comparison #{record.comparison_id}, started "
            f"{record.created[:16].replace('T', ' ')} UTC) stopped when the process running it did, with "
            f"{len(job.finished)} of {record.plan.n_runs} runs finished and saved. Resume trains the "
            f"{job.n_left} run{'s' if job.n_left != 1 else ''} left into the same comparison; nothing "
            "finished is trained again.")


def finished_rows(job: InterruptedJob) -> list[dict]:
    """The runs an interrupted job finished, one dict per run, for a dataframe."""
    return [{"run": f"#{r.id}", "variant": r.variant, "seed": r.seed, "status": r.status,
             "test accuracy %": r.test_acc} for r in job.finished]


def verdict_is_clear(cmp: compare.ComparisonResult) -> bool:
    """True when stats.paired_verdict names a winner for every paired variant."""
    paired = [r for r in cmp.rows if r["reference"] is not None]
    return bool(paired) and all(r["winner"] is not None for r in paired)


def setup_line(cmp: compare.ComparisonResult) -> str:
    """Model, data, training budget, seeds, device and wall time of a comparison, in one line."""
    c = cmp.base_config
    device = compare.device_and_precision(cmp)
    stop = f" (stopped after {c.max_steps} steps)" if c.max_steps else ""
    return (f"{c.model}, k = {train.size_label(c.kernel_size)}, patch {train.size_label(c.patch_size)} on {c.dataset}; "
            f"{c.epochs} epoch(s){stop}, batch {c.batch_size}, lr {c.lr:g}; "
            f"seeds {', '.join(map(str, cmp.seeds))}; device {device}; {duration(cmp.wall_time)} in all")


def covariance_set_label(info: CovarianceSetInfo) -> str:
    """How the Training Lab lists a set."""
    return f"set: {info.name} ({info.kernel_size} × {info.kernel_size}, {info.depth} layers)"


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


def history_options(comparisons: list, runs: list) -> dict:
    """How History lists saved comparisons and the runs outside them (runs.ComparisonSummary,
    RunSummary, newest first): label -> ("c", comparison id) or ("r", run id)."""
    options = {}
    for c in comparisons:
        unfinished = f" [{c.status}]" if c.status != "ok" else ""
        options[f"comparison #{c.id} ({c.created[:16].replace('T', ' ')}): {', '.join(c.variants)} on "
                f"{c.dataset}, {len(c.seeds)} seed(s){unfinished}"] = ("c", c.id)
    for r in runs:
        if r.comparison_id is None:
            acc = f", test {r.test_acc:.1f}%" if r.test_acc is not None else f", {r.status}"
            options[f"run #{r.id} ({r.created[:16].replace('T', ' ')}): {r.init} {r.model} on "
                    f"{r.dataset}{acc}"] = ("r", r.id)
    return options
