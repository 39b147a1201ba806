"""The Frequency View's presenter: the filter sources it offers and what it says under each figure. No
streamlit here."""

from __future__ import annotations

from convcov_core import frequency

from . import labels

SOURCES = labels.frequency_sources()
SAVED_RUN, UPLOAD = NETWORKS = ("A saved run", "An uploaded checkpoint")
FILTER_COUNTS = (64, 256, 1024, 4096)

SPECTRA_CAPTION = ("Mean |FFT|, low frequencies in the centre: white-noise filters (PyTorch default) spread their "
                   "energy over all frequencies, smooth filters (a larger σ, or trained ones) keep it in a central "
                   "blob that shrinks as they get smoother.")


def from_network(source: str) -> bool:
    return source in frequency.NETWORK_SOURCES


def offered_runs(runs: list, source: str) -> list:
    """The saved runs a source can read: a run's trained filters need its weights, its covariance does not."""
    return [s for s in runs if s.has_weights or source != frequency.TRAINED]


def profile_caption(white_noise: bool) -> str:
    reference = " (dashed: PyTorch's default i.i.d. filters of the same size)" if white_noise else ""
    return (f"How fast the spectrum falls with frequency: a flat line is white noise{reference}, a steep drop "
            "means low-pass (smooth) filters. The legend gives the frequency at which each line falls to half "
            "its peak: the lower, the smoother the filters.")


def size_caption(kernel_size: int) -> str:
    return (f"Bars at {kernel_size} mean the energy fills the whole filter; bars far below it mean localized "
            "filters. The frequency-view paper found trained filters far smaller than their kernel; a short run "
            "from a random init keeps much of the init's spread. The closed form gives every pixel the same "
            "variance, so its filters fill the window whatever σ: σ sets smoothness, not size.")


def sigma_curve_caption(fitted: bool) -> str:
    return ("Where the closed form's mean |FFT| falls to half its peak: the larger σ, the smoother its filters and "
            "the lower the curve (at σ of about 0.5 px and below it stays above half up to 0.5 cycles/pixel, like "
            "white noise). "
            + ("Diamonds: the network's layers at the σ that best fits their learned covariance; below the curve "
               "means smoother than the closed form at that σ, above means rougher." if fitted
               else "Pick a network as the source to place its layers here."))
