"""How the pages name things: slider choices, init-scheme labels, and a saved run's one-line label."""

from __future__ import annotations

from convcov_core import covariance, frequency, init
from convcov_core.mimetic import DEFAULTS as MIMETIC

from . import families

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
    "impulse": "Impulse",
    "box-3": "Box of 3 pixels",
    "gaussian-bump": "Gaussian bump",
    "delta-orthogonal": "Delta-orthogonal",
    "all-pass": "All-pass",
    "mimetic": "Mimetic attention (ViT)",
}


#: What each scheme draws and where it comes from, in a sentence or two; v is the mean per-weight
#: variance 1/(3k²), so k√v = 1/√3.
SCHEME_HELP = {
    "default": "i.i.d. uniform U(−1/k, 1/k): PyTorch's own kaiming_uniform(a = √5) for a depthwise conv.",
    "kaiming_normal": "i.i.d. normal N(0, v).",
    "orthogonal": "The C × k² filter matrix with orthonormal rows (columns when C > k²), scaled to v.",
    "gaussian": "Samples of N(0, v S), S[p, q] = exp(−|p − q|² / 2σ²) (Trockman, Willmott & Kolter 2023): "
                "random filters whose neighbouring pixels are correlated.",
    "learned": "Samples of N(0, v S), S the covariance a trained network learned, resized to k.",
    "impulse": "A single pixel at a random position set to k√v, the rest 0 (Zheng, Li & Lucey 2024, "
               "arXiv 2401.12511): each channel's conv is a shift. Not zero-mean.",
    "box-3": "Three distinct random pixels set to k√(v/3), the rest 0 (the box-n of Zheng, Li & Lucey "
             "2024, n = 3). Not zero-mean.",
    "gaussian-bump": "One Gaussian bump a·exp(−|p − c|² / 2σ²) at a random centre c (the `gau` scheme of "
                     "Zheng, Li & Lucey 2024). Not a sample from a covariance: each filter is one column "
                     "of S, where the Gaussian covariance scheme draws N(0, v S), so its covariance "
                     "(∝ S², minus the mean) is smoother and its mean is not zero.",
    "delta-orthogonal": "Zero except ±k√v at the centre, sign at random (Xiao et al. 2018): the identity "
                        "conv up to sign and scale, an isometry. Its covariance is a single entry (centre "
                        "with centre), one cell of the tiled view.",
    "all-pass": "An orthogonal depthwise conv: the Cayley transform of a random skew filter (as in "
                "Trockman & Kolter 2021), |DFT| = 1 on a 2k × 2k grid, truncated to k × k (about 17% "
                "of its energy is cut) and rescaled to v. No closed-form covariance: the target is "
                f"that of {init.REFERENCE_FILTERS:,} other filters.",
    "mimetic": "For Vision Transformers, not depthwise filters (Trockman & Kolter 2023, as osiriszjq/structured_init "
               f"builds it): per head W_q W_kᵀ ≈ {MIMETIC['alpha1']} Z/√d + {MIMETIC['beta1']} I (its best "
               f"rank-k approximation, k the head dimension), and per layer one target {MIMETIC['alpha2']} Z/√d − "
               f"{MIMETIC['beta2']} I factored into the value and projection weights and split over the heads, "
               "so the layer's W_v W_proj has that target's eigenvalues and trace (diagonal mean about "
               f"−{MIMETIC['beta2']}; a head's share about −{MIMETIC['beta2']}/H) but is not the target itself. "
               "Pre-trained ViTs have W_q W_kᵀ near +I and W_v W_proj near −I. For a ViT the default init is "
               "timm's own (truncated normal weights of std 0.02).",
}


def scheme_names(include_learned: bool) -> list[str]:
    """The filter schemes a gallery can show, in registry order (those that need learned covariances
    only when there are some)."""
    return init.scheme_names("depthwise", with_source=include_learned)


def description(name: str) -> str:
    """The registry's one-line description of an init scheme."""
    return init.get_scheme(name).description


def scheme_label(name: str) -> str:
    """SCHEME_LABELS' name, else "Laplace covariance" and the like for a closed-form scheme (the family
    as families.NAMES names it, else its key), else its description."""
    closed = init.get_scheme(name).closed_form
    family = families.NAMES.get(closed.family, closed.family) if closed else ""
    return SCHEME_LABELS.get(name) or (f"{family[:1].upper()}{family[1:]} covariance" if closed else description(name))


MATH_SYMBOLS = {"sqrt(3)": "√3", "sqrt(5)": "√5", "sigma^2": "σ²", "d^2": "d²", "sigma": "σ", "alpha": "α",
                "^(-α)": "^(−α)"}


def formula(text: str) -> str:
    """A formula as the library writes it (ASCII) in the symbols the pages use: sqrt(3) -> √3, sigma -> σ."""
    for ascii_form, symbol in MATH_SYMBOLS.items():
        text = text.replace(ascii_form, symbol)
    return text


def scheme_help(name: str) -> str:
    """SCHEME_HELP's sentences, else the formula of a closed-form scheme's covariance, else its description."""
    closed = init.get_scheme(name).closed_form
    generic = (f"Samples of N(0, v S), S[p, q] = {formula(covariance.FAMILIES[closed.family])}, d = |p − q| in pixels: "
               "a closed-form covariance beside the Gaussian, σ on the same depth schedule." if closed
               else description(name))
    return SCHEME_HELP.get(name) or generic


def uses_sigma(name: str) -> bool:
    """Whether the scheme's filters follow the σ schedule (Scheme.uses_sigma)."""
    return init.get_scheme(name).uses_sigma


#: How the Frequency View names a network as the source of its filters.
NETWORK_SOURCE_LABELS = {init.LEARNED: "Learned covariance of a network",
                         frequency.TRAINED: "Trained filters of a network"}


def frequency_sources() -> dict[str, str]:
    """{label: source} of the Frequency View (frequency.frequency_sources): a σ scheme's label with "(σ)",
    the default's, then the networks'."""
    def label(source: str) -> str:
        if source in NETWORK_SOURCE_LABELS:
            return NETWORK_SOURCE_LABELS[source]
        return f"{scheme_label(source)} (σ)" if frequency.uses_sigma(source) else scheme_label(source)

    return {label(source): source for source in frequency.frequency_sources()}


def run_label(summary) -> str:
    """How every page lists a saved run (a runs.RunSummary), e.g.
    "#1 example: convmixer-64/8 on mnist5k, k = 9, default init, test 97.9%"."""
    name = f" {summary.name}:" if summary.name else ""
    init_name = summary.variant or summary.init + (" frozen" if summary.freeze_filters else "")
    acc = f", test {summary.test_acc:.1f}%" if summary.test_acc is not None else ""
    k = f", k = {summary.kernel_size}" if summary.kernel_size is not None else ""
    return f"#{summary.id}{name} {summary.model} on {summary.dataset}{k}, {init_name} init{acc}"
