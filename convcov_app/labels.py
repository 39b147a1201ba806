"""How the pages name things: slider choices, init-scheme labels, and a saved run's one-line label."""

from __future__ import annotations

from convcov_core import init

#: Sigma choices for the log-scale slider, 0.1 to 10 (roughly even steps in log sigma).
SIGMA_OPTIONS = (0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0,
                 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0)


#: How the gallery names each init scheme.
SCHEME_LABELS = {
    "default": "PyTorch default (uniform)",
    "kaiming_normal": "Kaiming normal",
    "orthogonal": "Orthogonal",
    "gaussian": "Gaussian covariance",
    "learned": "Learned covariance",
}


def scheme_names(include_learned: bool) -> list[str]:
    """The init schemes a gallery can show, in registry order ("learned" only when available)."""
    return [name for name in init.SCHEMES if name != "learned" or include_learned]


def scheme_label(name: str) -> str:
    return SCHEME_LABELS.get(name, init.SCHEMES[name].description)


def run_label(summary) -> str:
    """How every page lists a saved run (a runs.RunSummary), e.g.
    "#1 example: convmixer-64/8 on mnist5k, k = 9, default init, test 97.9%"."""
    name = f" {summary.name}:" if summary.name else ""
    init_name = summary.variant or summary.init + (" frozen" if summary.freeze_filters else "")
    acc = f", test {summary.test_acc:.1f}%" if summary.test_acc is not None else ""
    k = f", k = {summary.kernel_size}" if summary.kernel_size is not None else ""
    return f"#{summary.id}{name} {summary.model} on {summary.dataset}{k}, {init_name} init{acc}"
