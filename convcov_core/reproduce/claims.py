"""The six claims: per claim its parts and verdict (rules), the numbers behind them, a setup text
and a figure spec for plots.claims (build_claims)."""

from __future__ import annotations

import pandas as pd

from .. import covariance, init, stats
from ..compare import ComparisonResult
from ..models import parse_spec
from ..regime import PAPER_REGIME, regime_of
from ..sweep import cell_effects
from ..text import number
from ..train import TrainConfig
from .rules import SUPPORTED, above, non_inferiority, settle, settle_some, superiority, unrefuted_below
from .suites import SuiteRuns

CNFA_THRESHOLD = 0.9
FIT_R_MIN = 0.5  # a fitted sigma whose closed form correlates less than this is not a measurement


def _acc(comparison: ComparisonResult, variant: str) -> dict:
    """{seed: final test accuracy or None} of a variant (empty when the suite did not run it)."""
    for row in comparison.rows:
        if row["variant"] == variant:
            return dict(row["per_seed"])
    return {}


def _diffs(a: dict, b: dict) -> dict:
    return {s: a[s] - b[s] for s in a if a.get(s) is not None and b.get(s) is not None}


def _pm(stats: dict, unit: str = " points", spec: str = "+.2f") -> str:
    if stats["mean"] is None:
        return "no finished pairs"
    se = f" ± {stats['se']:.2f}" if stats["se"] is not None else ""
    return f"{stats['mean']:{spec}}{se}{unit} (mean ± SE, {stats['n']} seeds)"


def _paired_spec(title: str, comparison: ComparisonResult, categories: list[str]) -> dict:
    present = [c for c in categories if c in comparison.variants]
    return {"kind": "paired", "title": title, "ylabel": "test accuracy (%)", "categories": present,
            "seeds": list(comparison.seeds),
            "values": {c: [_acc(comparison, c).get(s) for s in comparison.seeds] for c in present}}


def _variant_table(comparison: ComparisonResult, names: list[str]) -> list[dict]:
    rows = []
    for row in comparison.rows:
        if row["variant"] in names:
            rows.append({"variant": row["variant"], "n": row["n"], "mean": row["mean"], "std": row["std"],
                         "per_seed": {str(s): v for s, v in row["per_seed"].items()}})
    return rows


def _training(config: TrainConfig, *, dataset: bool = True) -> str:
    params = ", ".join(f"{k}={v}" for k, v in config.dataset_params.items())
    steps = f", at most {config.max_steps} steps" if config.max_steps else ""
    where = f"on {config.dataset}{f' ({params})' if params else ''}, " if dataset else ""
    return (f"{where}{config.epochs} epoch(s){steps}, batch {config.batch_size}, AdamW lr {config.lr:g} "
            "one-cycle")


def _describe(config: TrainConfig) -> str:
    return (f"{config.model}, {config.kernel_size} x {config.kernel_size} filters, patch {config.patch_size}, "
            f"{_training(config)}")


def _layer_table(layers: list[str], per_seed: dict, fixed: dict) -> dict:
    """Markdown-ready table: one row per layer, the mean ± SE over seeds of each per_seed column
    ({name: {seed: values per layer}}) and the value of each fixed column ({name: values per layer})."""
    rows = []
    for j, layer in enumerate(layers):
        row = [layer]
        for by_seed in per_seed.values():
            iv = stats.mean_interval([v[j] for v in by_seed.values() if j < len(v)])
            row.append(f"{number(iv.mean, '.3f')} ± {number(iv.se, '.3f')}")
        row += [number(values[j], ".3f") if j < len(values) else "-" for values in fixed.values()]
        rows.append(row)
    return {"columns": ["layer", *per_seed, *fixed], "rows": rows}


def _regime(config: TrainConfig, paper: str, extra: str = "") -> dict:
    """What a claim measured (regime.regime_of of its config, with `extra`) and the paper's regime for it."""
    regime = regime_of(config)
    return {"measured": regime.describe() + extra, "paper": paper, "wider_than_map": regime.wider_than_map,
            **{k: v for k, v in regime.to_dict().items() if k != "text"}}


def verdict_at(claim: dict) -> str:
    """'not supported at <what was measured>': a verdict never stands without its regime (reports
    written before regimes were recorded give the bare verdict)."""
    regime = claim.get("regime")
    return f"{claim['verdict']} at {regime['measured']}" if regime else claim["verdict"]


def _claim(number: int, title: str, statement: str, source: str, setup: str, parts: list[dict],
           our_number: str, figure: dict, numbers: dict, regime: dict, *, some_cases: bool = False) -> dict:
    verdict = settle_some(parts) if some_cases else settle(parts)
    return {"id": number, "title": title, "claim": statement, "source": source, "setup": setup,
            "parts": parts, "verdict": verdict, "our_number": our_number, "figure": figure,
            "numbers": numbers, "regime": regime, "verdict_note": unrefuted_below(parts)}


def claim_gaussian_beats_default(runs: SuiteRuns) -> dict:
    c = runs.comparison
    part = superiority(_diffs(_acc(c, "gaussian"), _acc(c, "default")), "gaussian", "default")
    sigma = init.default_sigmas(c.base_config.kernel_size)
    setup = (f"{_describe(c.base_config)}; both inits trained; Gaussian sigma {sigma[0]:g} -> {sigma[1]:.3g} "
             f"over depth; seeds {', '.join(map(str, c.seeds))}.")
    return _claim(1, "Gaussian init beats the default init",
                  "Gaussian closed-form covariance init beats PyTorch's default init for ConvMixer with "
                  "large kernels in short training (paper: often over 1 point on CIFAR-10).",
                  "seed 000 (Trockman, Willmott & Kolter, ICLR 2023)", setup, [part],
                  f"gaussian - default = {_pm(part)}; {part['favour_a']}/{part['n']} seeds favour gaussian",
                  _paired_spec("Claim 1: trained, Gaussian vs default init", c, ["default", "gaussian"]),
                  {"variants": _variant_table(c, ["default", "gaussian"])},
                  _regime(c.base_config, PAPER_REGIME + "; short training"))


def _frozen_cases(runs: SuiteRuns) -> dict:
    """{cell label: {seed: frozen Gaussian - trained default}} over the effect map's cells but the main
    setting's own (claim 2's other cases): the frozen map's Gaussian trials against the map's default ones."""
    if runs.frozen_table is None or runs.map_table is None:
        return {}
    axes = list(runs.effect_map.axes)
    main = tuple(getattr(runs.effect_map.base, a) for a in axes)  # the main setting's cell, tested as such
    frozen = _cell_accuracies(runs.frozen_table, axes, "gaussian")
    trained = _cell_accuracies(runs.map_table, axes, "default")
    return {", ".join(_MAP_AXES[a][0](v) for a, v in zip(axes, cell)):
            _diffs(by_seed, trained.get(cell, {})) for cell, by_seed in frozen.items() if cell != main}


def _cell_accuracies(table: pd.DataFrame, axes: list[str], init_name: str) -> dict:
    """{cell: {seed: test accuracy}} of one scheme's finished trials."""
    ok = table[(table["status"] == "ok") & (table["init"] == init_name)]
    out: dict = {}
    for _, row in ok.iterrows():
        out.setdefault(tuple(row[a] for a in axes), {})[int(row["seed"])] = float(row["test_acc"])
    return out


def claim_frozen_gaussian(runs: SuiteRuns, margin: float) -> dict:
    c = runs.comparison
    main = superiority(_diffs(_acc(c, "gaussian-frozen"), _acc(c, "default")), "gaussian-frozen", "default",
                       "main setting: gaussian-frozen beats default (trained filters)")
    cases = [superiority(diffs, "gaussian-frozen", "default", f"map cell {label}: gaussian-frozen beats default")
             for label, diffs in _frozen_cases(runs).items()]
    parts = [main, *cases]
    extra = ""
    if "default-frozen" in c.variants:
        control = superiority(_diffs(_acc(c, "default-frozen"), _acc(c, "default")), "default-frozen", "default")
        extra = f"; control default-frozen - default = {_pm(control)}"
    setup = (f"{_describe(c.base_config)}; gaussian-frozen: Gaussian init, depthwise filters never "
             f"trained; default: default init, filters trained. The cases: the main setting and "
             f"{len(cases)} cell(s) of the effect map (claim 6), each its own paired test, Holm's correction "
             f"over all {len(parts)} (RULES['some cases']).")
    best = max(parts, key=lambda p: -1e9 if p["mean"] is None else p["mean"])
    return _claim(2, "In some cases frozen Gaussian filters beat the default init",
                  "In some cases the covariance init outperforms uniform (default) init even when the "
                  "depthwise filters are never trained (the paper's words: 'in some cases our initialization "
                  "works so well that it outperforms uniform initialization even when the filters aren't "
                  "trained at all'; frozen Gaussian vs TRAINED default).",
                  "seed 000 (Trockman, Willmott & Kolter, ICLR 2023)", setup, parts,
                  f"main setting: gaussian-frozen - default = {_pm(main)}; {main['favour_a']}/{main['n']} seeds "
                  f"favour gaussian-frozen; best of {len(parts)} cases: {best['statement'].split(':')[0]} "
                  f"{number(best['mean'], '+.2f')}{extra}",
                  _paired_spec("Claim 2: frozen Gaussian filters vs trained default filters", c,
                               ["default", "gaussian-frozen", "default-frozen"]),
                  {"variants": _variant_table(c, ["default", "gaussian-frozen", "default-frozen"]),
                   "margin": margin},
                  _regime(c.base_config, PAPER_REGIME + "; frozen filters help 'in some cases'",
                          f"; and the {len(cases)} cells of the effect map"), some_cases=True)


def claim_transfer(runs: SuiteRuns, margin: float) -> dict:
    c = runs.comparison
    learned = _acc(c, "learned")
    beats = superiority(_diffs(learned, _acc(c, "default")), "learned", "default")
    meets = non_inferiority(_diffs(_acc(c, "gaussian"), learned), "gaussian", "learned", margin)
    meets["statement"] = f"the closed form (gaussian) meets or exceeds learned (margin {margin:g})"
    s = runs.suite.source
    source_acc = {label: r.final.get("test_acc") for label, r in runs.source_runs().items()}
    where = ("the bundled example (ConvMixer-64/8, 9 x 9 filters, trained 15 epochs on mnist5k to 97.9%)"
             if s is None else f"per seed {_describe(s)}, default init")
    setup = (f"Source: {where}. Its per-layer learned covariances are resized to {c.base_config.kernel_size} x "
             f"{c.base_config.kernel_size} and interpolated over depth (covariance.transfer) to initialize the "
             f"target: {_describe(c.base_config)}; margin {margin:g} accuracy point(s).")
    return _claim(3, "Learned covariances transfer; the closed form meets or exceeds them",
                  "Covariances learned by a trained ConvMixer transfer: used to initialize another one (other "
                  "kernel size, depth, data) they beat the default init, and the closed form typically meets or "
                  "exceeds them.",
                  "seed 000 (Trockman, Willmott & Kolter, ICLR 2023)", setup, [beats, meets],
                  f"learned - default = {_pm(beats)}; gaussian - learned = {_pm(meets)}",
                  _paired_spec("Claim 3: init from a trained model's learned covariances", c,
                               ["default", "gaussian", "learned"]),
                  {"variants": _variant_table(c, ["default", "gaussian", "learned"]),
                   "source_test_acc": source_acc,
                   "table": {"columns": ["source run", *source_acc], "rows": [
                       ["test accuracy %", *[number(v, ".1f") for v in source_acc.values()]]]}},
                  _regime(c.base_config, "covariances of ConvMixers pre-trained on CIFAR-10 / ImageNet, transferred "
                          "to models of other depth, width, patch and kernel size; " + PAPER_REGIME))


def claim_sigma_grows(runs: SuiteRuns) -> dict:
    c = runs.comparison
    per_seed, fits_r, names = {}, {}, []
    for run in c.runs.get("default", []):
        if run.status != "ok" or not run.covariances:
            continue
        fits = [covariance.fit_sigma(S) for S in run.covariances]
        per_seed[run.config.seed] = [f[0] for f in fits]
        fits_r[run.config.seed] = [f[1] for f in fits]
        names = run.layer_names
    measured = {s: v[-1] - v[0] for s, v in per_seed.items()
                if len(v) >= 2 and min(fits_r[s][0], fits_r[s][-1]) >= FIT_R_MIN}
    part = superiority(measured, "last layer", "first layer",
                       f"fitted sigma grows from the first to the last layer (seeds whose first and last "
                       f"fits have r >= {FIT_R_MIN:g})")
    k, depth = c.base_config.kernel_size, len(names)
    width = c.base_config.model.split("-")[1].split("/")[0]
    closed = covariance.depth_schedule(*init.default_sigmas(k), depth) if depth else []
    first = stats.mean_interval([v[0] for v in per_seed.values()])
    last = stats.mean_interval([v[-1] for v in per_seed.values()])
    setup = (f"Centered covariance of each depthwise layer's {width} filters after training with the "
             f"default init ({_describe(c.base_config)}): {width} filters estimate a {k * k} x {k * k} "
             f"covariance of rank at most {int(width) - 1}. The closed-form sigma that best fits it "
             "(covariance.fit_sigma, both scaled to unit mean diagonal) with the fit's Pearson r; a fit "
             f"with r < {FIT_R_MIN:g} is not counted as a measurement of sigma. Difference last - first "
             "layer per seed.")
    fit_first = stats.mean_interval([v[0] for v in fits_r.values()]).mean
    fit_last = stats.mean_interval([v[-1] for v in fits_r.values()]).mean
    figure = {"kind": "layers", "title": "Claim 4: fitted sigma of learned covariances by depth",
              "xlabel": "depthwise layer", "ylabel": "fitted sigma (pixels)",
              "layers": [str(i + 1) for i in range(depth)],
              "groups": [{"name": "trained from default init", "per_seed": {str(s): v for s, v in per_seed.items()}},
                         {"name": "closed-form schedule (Gaussian init)", "per_seed": {"": closed}, "dash": True}],
              "hline": None}
    return _claim(4, "Learned covariances spread out with depth",
                  "Learned covariances spread out with depth: the fitted sigma grows from the first to the "
                  "last layer.", "seed 000 (Trockman, Willmott & Kolter, ICLR 2023)", setup, [part],
                  (f"sigma last - first = {_pm(part, ' px')} over the {len(measured)} of {len(per_seed)} seeds "
                   "whose fits have" if measured else "not measured: in no seed do both the first and the last "
                   "layer fit the closed form with") + f" r >= {FIT_R_MIN:g}; first layer {number(first.mean)} px "
                  f"(fit r {number(fit_first)}), last {number(last.mean)} px (fit r {number(fit_last)})",
                  figure, {"layers": names, "sigma": {str(s): v for s, v in per_seed.items()},
                           "fit_r": {str(s): v for s, v in fits_r.items()}, "closed_form": closed,
                           "fit_r_min": FIT_R_MIN,
                           "table": _layer_table(names, {"fitted sigma (mean ± SE)": per_seed,
                                                         "fit r (mean ± SE)": fits_r},
                                                 {"closed-form sigma of the Gaussian init": closed})},
                  _regime(c.base_config, "ConvMixers trained to convergence on CIFAR-10 and ImageNet (seed 000's "
                          "figures of learned covariances by depth)"))


def claim_cnfa(runs: SuiteRuns) -> dict:
    cnfa = runs.cnfa
    layers = [row["layer"] for row in next(iter(cnfa.values()))["layers"]] if cnfa else []

    def per_seed(key: str) -> dict:
        return {s: [row[key] for row in v["layers"]] for s, v in cnfa.items()}

    trained, initial, control = per_seed("r_trained"), per_seed("r_init"), per_seed("r_control")
    parts = []
    for j, name in enumerate(layers):
        parts += [
            above({s: trained[s][j] for s in cnfa}, CNFA_THRESHOLD, f"{name}: r trained > {CNFA_THRESHOLD:g}"),
            superiority({s: trained[s][j] - initial[s][j] for s in cnfa}, "trained", "at init",
                        f"{name}: r trained > r at init"),
            superiority({s: trained[s][j] - control[s][j] for s in cnfa}, "r(AGOP, CNFM)",
                        "r(CNFM init, CNFM)", f"{name}: r trained > r(CNFM at init, CNFM trained)"),
        ]
    label = next(iter(cnfa.values()))["label"] if cnfa else runs.suite.cnn.model
    setup = (f"{label}, {_training(runs.suite.cnn, dataset=False)}. Per conv layer, Pearson r between the "
             f"patch-AGOP of all outputs on {runs.suite.cnfa_images} test images and W^T W (the CNFM), for "
             "the trained model and the same model at its initialization; and, as seed 001's control that "
             "the weights moved far from their init, r between the CNFM at init and after training. Three "
             "tests per layer, every layer.")
    figure = {"kind": "layers", "title": "Claim 5: r(patch-AGOP, WᵀW) per layer, trained vs at init",
              "xlabel": "conv layer", "ylabel": "Pearson r", "layers": layers,
              "groups": [{"name": "trained", "per_seed": {str(s): v for s, v in trained.items()}},
                         {"name": "at init", "per_seed": {str(s): v for s, v in initial.items()}},
                         {"name": "control: r(CNFM init, CNFM trained)",
                          "per_seed": {str(s): v for s, v in control.items()}, "dash": True}],
              "hline": {"y": CNFA_THRESHOLD, "label": f"r = {CNFA_THRESHOLD:g}"}}
    claim = _claim(5, "CNFA: AGOP and WᵀW agree after training, and training made them agree",
                   "In every conv layer, Pearson r between patch-AGOP and WᵀW is high after training "
                   f"(> {CNFA_THRESHOLD:g}), lower at initialization, and higher than the r between the "
                   "trained and the initial WᵀW (the weights moved far from their init).",
                   "seed 001 (Convolutional Neural Feature Ansatz)", setup, parts, "", figure,
                   {"layers": layers, "r_trained": {str(s): v for s, v in trained.items()},
                    "r_init": {str(s): v for s, v in initial.items()},
                    "r_control": {str(s): v for s, v in control.items()},
                    "test_acc": {str(s): v["test_acc"] for s, v in cnfa.items()},
                    "table": _layer_table(layers, {"r trained (mean ± SE)": trained,
                                                   "r at init (mean ± SE)": initial,
                                                   "r(CNFM init, CNFM trained) (mean ± SE)": control}, {})},
                   _regime(runs.suite.cnn, "CNNs trained to convergence on the seed's tasks (noisy bars, "
                           "noisy MNIST, CIFAR-10, ...), seed 001"))
    means = [stats.mean_interval([trained[s][j] for s in cnfa]).mean for j in range(len(layers))]
    inits = [stats.mean_interval([initial[s][j] for s in cnfa]).mean for j in range(len(layers))]
    claim["our_number"] = ("r trained / at init per layer: "
                           + ", ".join(f"{number(t, '.2f')} / {number(i, '.2f')}" for t, i in zip(means, inits))
                           + f"; {sum(p['verdict'] == SUPPORTED for p in parts)} of {len(parts)} tests supported")
    return claim


#: Claim 6's axes: (how a value is written, whether the gain should be larger at the LAST value).
_MAP_AXES = {"kernel_size": (lambda k: f"{k} x {k} filters", True),
             "model": (lambda m: f"depth {parse_spec(m)['depth']}", True),
             "epochs": (lambda e: f"{e} epoch(s)", False)}
_AXIS_NAMES = {"kernel_size": "filters", "model": "depth", "epochs": "training"}


def _cell_gains(table: pd.DataFrame, axes: list[str]) -> dict:
    """{seed: {cell: gaussian - default test accuracy}} over the map's finished pairs."""
    ok = table[table["status"] == "ok"]
    wide = ok.pivot_table(index=[*axes, "seed"], columns="init", values="test_acc", aggfunc="first")
    gains = {}
    for index, row in wide.iterrows():
        if pd.notna(row.get("gaussian")) and pd.notna(row.get("default")):
            *cell, seed = index
            gains.setdefault(int(seed), {})[tuple(cell)] = float(row["gaussian"] - row["default"])
    return gains


def _growth(gains: dict, cells: list[tuple], j: int, low, high) -> dict:
    """Per seed with every cell: the mean over the other axes' cells of gain(axis j = high) - gain(axis j = low)."""
    out = {}
    for seed, by_cell in gains.items():
        pairs = [(by_cell.get(c), by_cell.get(c[:j] + (high,) + c[j + 1:])) for c in cells if c[j] == low]
        if pairs and all(a is not None and b is not None for a, b in pairs):
            out[seed] = sum(b - a for a, b in pairs) / len(pairs)
    return out


def claim_gain_grows(runs: SuiteRuns) -> dict:
    """Claim 6: the gain of the Gaussian init is larger for larger filters, deeper models and
    shorter training. Per axis of the map, per seed: the gain at its far end minus the gain at its
    near end, averaged over the other axes' cells (an interaction contrast), by the superiority rule."""
    sweep, table = runs.effect_map, runs.map_table
    axes = list(sweep.axes)
    cells = sweep.cells()
    gains = _cell_gains(table, axes)
    parts, numbers = [], {}
    for j, axis in enumerate(axes):
        write, grows_up = _MAP_AXES[axis]
        values = sweep.axes[axis]
        big, small = (values[-1], values[0]) if grows_up else (values[0], values[-1])
        growth = _growth(gains, cells, j, small, big)
        parts.append(superiority(growth, write(big), write(small),
                                 f"the gain (gaussian - default) is larger with {write(big)} than with {write(small)}"))
        numbers[axis] = {str(s): v for s, v in growth.items()}
    kernel_j = axes.index("kernel_size")
    lines = sorted({c[:kernel_j] + c[kernel_j + 1:] for c in cells})
    others = [a for a in axes if a != "kernel_size"]
    groups = []
    for rest in lines:
        name = ", ".join(_MAP_AXES[a][0](v) for a, v in zip(others, rest)) or "gain"
        per_seed = {str(s): [by_cell.get(rest[:kernel_j] + (k,) + rest[kernel_j:]) for k in sweep.axes["kernel_size"]]
                    for s, by_cell in gains.items()}
        groups.append({"name": name, "per_seed": per_seed})
    figure = {"kind": "layers", "title": "Claim 6: gain of the Gaussian init over the map",
              "xlabel": "filter size", "ylabel": "gaussian - default (points)",
              "layers": [f"{k} x {k}" for k in sweep.axes["kernel_size"]], "groups": groups,
              "hline": {"y": 0.0, "label": "no gain"}}
    effects = cell_effects(sweep, table)
    table_rows = [[*(_MAP_AXES[a][0](row[a]) for a in axes), f"{number(row['diff_mean'], '+.2f')}",
                   f"[{number(row['diff_low'], '+.2f')}, {number(row['diff_high'], '+.2f')}]", str(int(row["n"])),
                   "-" if pd.isna(row["seeds_needed"]) else number(row["seeds_needed"], ".0f")]
                  for _, row in effects.iterrows()]
    columns = [*(_AXIS_NAMES[a] for a in axes), "gain (mean)", "95% interval", "seeds", "seeds to resolve it"]
    base = sweep.base
    setup = (f"An effect map: {base.model.split('/')[0]} on {base.dataset} ({_training(base, dataset=False)} unless "
             f"the map sets the epochs), every combination of "
             + ", ".join(", ".join(map(_MAP_AXES[a][0], sweep.axes[a])) for a in axes)
             + f"; in each cell gaussian and default init, filters trained, seeds {', '.join(map(str, sweep.seeds))}. "
             "Per axis and seed: the gain at one end minus the gain at the other, averaged over the other "
             "axes' cells.")
    summary = "; ".join(f"at {p['a']} minus at {p['b']} = {_pm(p)}" for p in parts)
    return _claim(6, "The gain grows with kernel size, depth and shorter training",
                  "The covariance init's gain over the default init is largest for larger filters, deeper "
                  "models and shorter training.", "seed 000 (Trockman, Willmott & Kolter, ICLR 2023)", setup,
                  parts, f"gain (gaussian - default) {summary}", figure,
                  {"growth": numbers, "table": {"columns": columns, "rows": table_rows}},
                  _regime(base, PAPER_REGIME + "; over the paper's filter sizes, depths and training lengths",
                          "; the map: " + "; ".join(", ".join(map(_MAP_AXES[a][0], sweep.axes[a])) for a in axes)))


def build_claims(runs: SuiteRuns) -> list[dict]:
    """The six claims with their parts, verdicts, numbers and figure specs (claim 6 where the suite
    has an effect map)."""
    m = runs.suite.margin
    claims = [claim_gaussian_beats_default(runs), claim_frozen_gaussian(runs, m), claim_transfer(runs, m),
              claim_sigma_grows(runs), claim_cnfa(runs)]
    if runs.effect_map is not None and runs.map_table is not None:
        claims.append(claim_gain_grows(runs))
    return claims
