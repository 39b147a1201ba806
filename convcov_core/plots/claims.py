"""Figures of the claims report, drawn from the figure specs stored in report.json (no streamlit).

Two kinds of spec, built by convcov_core.reproduce:
    paired  categories (init variants) on x, one line per seed joining its values, and the mean
            with its 95% t interval over seeds (stats.mean_interval, as the verdicts use it);
    layers  layers on x, for each group (trained / at init, ...) one thin line per seed and a thick
            line through the mean; optional horizontal threshold line.
`claim_figure` draws a spec with plotly for the app; `save_png` draws it with matplotlib (Agg) for
the Markdown report, so a report needs no JavaScript to read.
"""

from __future__ import annotations

import importlib.util
import math

import plotly.graph_objects as go

from .. import stats
from .style import finish_figure

SEED_COLOUR = "#b0b0b0"
MEAN_COLOUR = "#1f77b4"
GROUP_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


def mean_interval(values) -> tuple[float | None, float | None]:
    """(mean, half-width of its 95% t interval) of the finite values, as the verdicts use them;
    the half-width is None for fewer than two values."""
    iv = stats.mean_interval(values)
    return iv.mean, (iv.high - iv.mean if iv.high is not None else None)


def _layer_means(per_seed: dict, n_layers: int) -> list:
    return [mean_interval([v[j] for v in per_seed.values() if j < len(v)])[0] for j in range(n_layers)]


def _check(spec: dict) -> None:
    if spec.get("kind") not in ("paired", "layers"):
        raise ValueError(f"unknown figure kind {spec.get('kind')!r}; expected 'paired' or 'layers'")


# ---------------------------------------------------------------------------------------------
# plotly, for the app
# ---------------------------------------------------------------------------------------------


def claim_figure(spec: dict, *, height: int = 360) -> go.Figure:
    """An interactive figure of a claim's spec (hover gives every seed's value)."""
    _check(spec)
    fig = go.Figure()
    if spec["kind"] == "paired":
        cats = spec["categories"]
        for i, seed in enumerate(spec["seeds"]):
            fig.add_scatter(x=cats, y=[spec["values"][c][i] for c in cats], mode="lines+markers",
                            name=f"seed {seed}", line=dict(color=SEED_COLOUR, width=1),
                            marker=dict(size=6), legendgroup="seeds", showlegend=i == 0,
                            hovertemplate=f"seed {seed}<br>%{{x}}: %{{y:.2f}}<extra></extra>")
        means = [mean_interval(spec["values"][c]) for c in cats]
        fig.add_scatter(x=cats, y=[m for m, _ in means], mode="markers", name="mean, 95% interval",
                        marker=dict(color=MEAN_COLOUR, size=12, symbol="diamond"),
                        error_y=dict(type="data", array=[h or 0 for _, h in means], thickness=2, width=8),
                        hovertemplate="%{x}: mean %{y:.2f}<extra></extra>")
    else:
        layers, x_name = spec["layers"], spec.get("xlabel") or "layer"
        for g, group in enumerate(spec["groups"]):
            colour = GROUP_COLOURS[g % len(GROUP_COLOURS)]
            dash = "dash" if group.get("dash") else None
            many = len(group["per_seed"]) > 1
            for s, (seed, values) in enumerate(group["per_seed"].items()):
                fig.add_scatter(x=layers[:len(values)], y=values, mode="lines+markers", name=group["name"],
                                legendgroup=group["name"], showlegend=not many and s == 0,
                                line=dict(color=colour, width=1 if many else 2, dash=dash),
                                opacity=0.45 if many else 1.0, marker=dict(size=5),
                                hovertemplate=f"{group['name']}{f', seed {seed}' if seed else ''}<br>"
                                              f"{x_name} %{{x}}: %{{y:.3f}}<extra></extra>")
            if many:
                fig.add_scatter(x=layers, y=_layer_means(group["per_seed"], len(layers)), mode="lines+markers",
                                name=f"{group['name']} (mean)", legendgroup=group["name"],
                                line=dict(color=colour, width=3, dash=dash), marker=dict(size=8),
                                hovertemplate=f"{group['name']}, mean<br>{x_name} %{{x}}: %{{y:.3f}}<extra></extra>")
        if spec.get("hline"):  # named in the legend: a label on the plot sat over the markers at its ends
            line = dict(color="#444", dash="dot")
            fig.add_hline(y=spec["hline"]["y"], line=line)
            fig.add_scatter(x=[None], y=[None], mode="lines", line=line, name=spec["hline"]["label"])
        fig.update_xaxes(type="category")
    # the legend below the axis title (at y = -0.2 it sat over it)
    fig.update_layout(xaxis_title=spec.get("xlabel"), yaxis_title=spec["ylabel"],
                      legend=dict(orientation="h", y=-0.3, yanchor="top"))
    return finish_figure(fig, spec["title"], height)


# ---------------------------------------------------------------------------------------------
# matplotlib, for the Markdown report
# ---------------------------------------------------------------------------------------------


def can_draw_png() -> bool:
    """Whether matplotlib is installed (it comes with mlxtend; nothing else here needs it)."""
    return importlib.util.find_spec("matplotlib") is not None


def save_png(spec: dict, path, *, dpi: int = 90) -> None:
    """Draw a claim's spec as a small static PNG (matplotlib, Agg backend, no display needed)."""
    _check(spec)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    try:
        if spec["kind"] == "paired":
            cats = spec["categories"]
            xs = list(range(len(cats)))
            for i, seed in enumerate(spec["seeds"]):
                ys = [spec["values"][c][i] for c in cats]
                ax.plot(xs, [math.nan if y is None else y for y in ys], "o-", color=SEED_COLOUR, lw=1, ms=4,
                        label="seeds" if i == 0 else None)
            means = [mean_interval(spec["values"][c]) for c in cats]
            ax.errorbar(xs, [math.nan if m is None else m for m, _ in means], yerr=[h or 0 for _, h in means],
                        fmt="D", color=MEAN_COLOUR, ms=8, capsize=6, lw=2, label="mean, 95% interval")
            ax.set_xticks(xs, cats)
        else:
            layers = spec["layers"]
            for g, group in enumerate(spec["groups"]):
                colour = GROUP_COLOURS[g % len(GROUP_COLOURS)]
                style = "--" if group.get("dash") else "-"
                many = len(group["per_seed"]) > 1
                for s, values in enumerate(group["per_seed"].values()):
                    ax.plot(range(len(values)), values, style, marker="o", color=colour, ms=3,
                            lw=1 if many else 2, alpha=0.4 if many else 1.0,
                            label=group["name"] if not many and s == 0 else None)
                if many:
                    means = _layer_means(group["per_seed"], len(layers))
                    ax.plot(range(len(layers)), [math.nan if m is None else m for m in means], style,
                            marker="o", color=colour, lw=2.5, label=f"{group['name']} (mean)")
            if spec.get("hline"):
                ax.axhline(spec["hline"]["y"], color="#444", ls=":", lw=1, label=spec["hline"]["label"])
            ax.set_xticks(range(len(layers)), layers, rotation=30 if len(layers) > 8 else 0, fontsize=8)
            ax.set_xlabel(spec.get("xlabel") or "")
        ax.set_ylabel(spec["ylabel"])
        ax.set_title(spec["title"], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
