"""The frequency view of filters (seed 002): filters sampled from a scheme, or a network's trained
filters or learned covariances, their mean |FFT| spectra and radial profiles, effective sizes
(the smallest centred square holding a share of a filter's energy), and sigma against smoothness:
the closed form's half-max frequency per sigma, with a run's layers placed at their fitted sigma.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from . import analysis, covariance, init, learned_sets, models, train
from .train.model import cropped_niff_filters

Tensor = torch.Tensor


#: A network's filters: sampled by the learned scheme from its learned covariances, or its trained ones.
TRAINED = "trained"
NETWORK_SOURCES = (init.LEARNED, TRAINED)
#: The source whose filters are the flat, white-noise reference of every other: PyTorch's default init.
WHITE_NOISE = "default"


def frequency_sources() -> list[str]:
    """Where the Frequency View's filters come from: the samples of each sigma scheme among the filter
    schemes that need no source (init.using_sigma), of PyTorch's default, or a network (NETWORK_SOURCES)."""
    return [*init.using_sigma(init.scheme_names("depthwise", with_source=False)), WHITE_NOISE, *NETWORK_SOURCES]


def uses_sigma(source: str) -> bool:
    """Whether a source's filters follow sigma: the samples of a sigma scheme."""
    return source not in NETWORK_SOURCES and init.get_scheme(source).uses_sigma


@dataclass
class CheckpointFilters:
    """A user's checkpoint read as the Frequency View reads a saved run (duck-typed for its `run`
    arguments): its depthwise layers' names, their centered covariances and its state dict; `id`
    names the file in messages."""

    id: str
    layer_names: list[str]
    covariances: list[Tensor]
    state_dict: dict[str, Tensor] = field(repr=False)


def filters_from_state_dict(state: dict[str, Tensor], architecture: str, source: str) -> CheckpointFilters:
    """A checkpoint's depthwise filters with their centered covariances (learned_sets.learned_from_state_dict);
    `source` names it."""
    layers = learned_sets.learned_from_state_dict(state, architecture, source)
    return CheckpointFilters(source, layers.layer_names, layers.covariances, state)


def filters_from_checkpoint(data: bytes, filename: str, architecture: str, *,
                            max_bytes: int = models.DEFAULT_MAX_CHECKPOINT_BYTES) -> CheckpointFilters:
    """filters_from_state_dict of an uploaded file (models.read_checkpoint_bytes: no code in it runs)."""
    state = models.read_checkpoint_bytes(data, filename, max_bytes=max_bytes)
    return filters_from_state_dict(state, architecture, filename)


def source_layers(source: str, *, kernel_size: int = 9, n: int = 1024, sigma: float | None = None,
                  run: train.RunResult | CheckpointFilters | None = None,
                  seed: int = 0) -> list[tuple[str, Tensor]]:
    """(layer name, filters (N, k, k)) for the Frequency View.

    A scheme ("gaussian", "default", ...): n filters of one k x k layer as that init scheme draws
    them (sigma for a sigma scheme). "learned": n filters per layer of `run` (a saved run, or a user's checkpoint
    as CheckpointFilters), drawn from its learned covariances at its own kernel size. "trained":
    its trained depthwise filters (the saved weights); a NIFF run's spatial filters, cropped as its
    covariances were (_cropped_niff_layers).
    """
    if source not in frequency_sources():
        raise ValueError(f"unknown filter source {source!r}; choose one of {', '.join(frequency_sources())}")
    generator = torch.Generator().manual_seed(int(seed))
    if source not in NETWORK_SOURCES:
        name = f"{source.capitalize()} σ = {sigma:g}" if uses_sigma(source) and sigma is not None else source
        return [(name, init.sample_scheme(source, kernel_size, n, sigma=sigma, generator=generator))]
    if run is None:
        raise ValueError(f"the {source!r} source needs a saved run or a checkpoint")
    if source != TRAINED:
        if not run.covariances:
            raise ValueError(f"run {run.id} saved no covariances")
        names = run.layer_names if len(run.layer_names) == len(run.covariances) else [
            f"layer {i + 1}" for i in range(len(run.covariances))]
        k = covariance.kernel_size_of(run.covariances[0])
        return [(name, init.sample_scheme(source, k, n, covariance=c, generator=generator))
                for name, c in zip(names, run.covariances)]
    if not run.state_dict:
        raise ValueError(f"run {run.id} saved no weights, only covariances: pick 'learned covariance' "
                         "for it, or train it again with its weights kept")
    if isinstance(run, train.RunResult) and models.parse_spec(run.config.model)["niff"]:
        return _cropped_niff_layers(run)
    layers = []
    for name in run.layer_names:
        weight = run.state_dict.get(f"{name}.weight")
        if weight is None or weight.dim() != 4:
            raise ValueError(f"run {run.id} has no depthwise weight {name}.weight in its state dict")
        layers.append((name, weight.detach().to(torch.float64).reshape(-1, *weight.shape[-2:])))
    if not layers:
        raise ValueError(f"run {run.id} has no depthwise layers")
    return layers


def _cropped_niff_layers(run: train.RunResult) -> list[tuple[str, Tensor]]:
    """(layer name, C x k x k filters) of a NIFF run: its model rebuilt with the saved weights, its
    spatial filters cropped to k x k as at the end of training (train.model.cropped_niff_filters)."""
    *_, info = train.load_training_data(run.config)
    model = train.build_model_for(run.config, info)
    models.load_checkpoint_into(model, run.state_dict)
    names, filters, _ = cropped_niff_filters(model.eval(), run.config)
    return [(name, f.to(torch.float64)) for name, f in zip(names, filters)]


@dataclass
class FrequencySummary:
    """Per layer: mean |FFT| spectrum (size x size, centred), its radial profile, effective sizes."""

    names: list[str]
    kernel_size: int
    size: int
    energy: float
    spectra: list[Tensor]
    radii: Tensor
    profiles: list[Tensor]
    effective_sizes: list[Tensor]


def frequency_summary(layers: list[tuple[str, Tensor]], *, size: int = 64, energy: float = 0.9,
                      spectrum_filters: int = 1024) -> FrequencySummary:
    """Spectrum and radial profile (of each layer's first `spectrum_filters` filters: the mean
    |FFT| settles long before that) and effective sizes (analysis.effective_size, every filter)."""
    if not layers:
        raise ValueError("no filters to analyse")
    spectra, profiles, sizes = [], [], []
    radii = None
    for _, filters in layers:
        spec = analysis.spectrum(filters[:spectrum_filters], size=size)
        radii, profile = analysis.radial_profile(spec)
        spectra.append(spec)
        profiles.append(profile)
        sizes.append(analysis.effective_size(filters, energy=energy))
    k = layers[0][1].shape[-1]
    return FrequencySummary([name for name, _ in layers], int(k), size, float(energy), spectra,
                            radii, profiles, sizes)


def curve_scheme(source: str) -> str:
    """The scheme whose sigma curve a source is read against: its own sigma scheme, else the Gaussian
    (a network's layers are placed at their fitted Gaussian sigma)."""
    return source if uses_sigma(source) else "gaussian"


@dataclass
class SigmaCurve:
    """Smoothness of a sigma scheme's filters (the Gaussian closed form's by default) against sigma:
    the half-max frequency (analysis.half_max_frequency, cycles/pixel) of their mean |FFT| per sigma,
    and that of PyTorch's default i.i.d. filters as the reference (None: white noise never falls to half)."""

    kernel_size: int
    sigmas: list[float]
    half_max: list[float | None]
    default_half_max: float | None
    scheme: str = "gaussian"


#: The sigmas of the closed-form curve (pixels), evenly spread in log sigma.
CURVE_SIGMAS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0)


def _scheme_profile(scheme: str, kernel_size: int, n: int, size: int, seed: int,
                    sigma: float | None = None) -> Tensor:
    """Radial profile of the mean |FFT| (size x size) of n filters drawn from an init scheme."""
    generator = torch.Generator().manual_seed(int(seed))
    filters = init.sample_scheme(scheme, kernel_size, n, sigma=sigma, generator=generator)
    return analysis.radial_profile(analysis.spectrum(filters, size=size))[1]


def _half_max_of(scheme: str, kernel_size: int, n: int, size: int, seed: int,
                 sigma: float | None = None) -> float | None:
    return analysis.half_max_frequency(_scheme_profile(scheme, kernel_size, n, size, seed, sigma), size)


def sigma_curve(kernel_size: int, sigmas=CURVE_SIGMAS, *, n: int = 256, size: int = 64,
                seed: int = 0, scheme: str = "gaussian") -> SigmaCurve:
    """For each sigma: the half-max frequency of the mean |FFT| (zero-padded to size x size) of n
    filters drawn from a sigma scheme; for the Gaussian closed form it falls as 1/sigma (about
    sqrt(ln 2) / (pi sigma) for a window much wider than sigma), while their effective size stays at k."""
    sigmas = [covariance.check_sigma(s, "sigma") for s in sigmas]
    if not sigmas:
        raise ValueError("need at least one sigma")
    if not uses_sigma(scheme):
        raise ValueError(f"a sigma curve needs a sigma scheme ({', '.join(init.using_sigma(init.scheme_names()))}), "
                         f"not {scheme!r}")
    size = max(size, kernel_size)
    half_max = [_half_max_of(scheme, kernel_size, n, size, seed, sigma) for sigma in sigmas]
    return SigmaCurve(int(kernel_size), sigmas, half_max, _half_max_of(WHITE_NOISE, kernel_size, n, size, seed),
                      scheme)


@dataclass
class FrequencyView:
    """The Frequency View of one source. fitted: per layer of a run, the closed-form sigma that best
    fits its learned covariance (covariance.fit_sigma, with r) and its filters' mean effective size,
    to place the run's layers against the sigma curve; empty for a scheme. white_noise: the radial
    profile of PyTorch's default i.i.d. filters of the same size, the flat reference the source's
    profile is read against (None when the source is that default). layers: the filters."""

    summary: FrequencySummary
    fitted: list[dict]
    layers: list[tuple[str, Tensor]] = field(default_factory=list, repr=False)
    white_noise: Tensor | None = None

    def at_energy(self, energy: float) -> FrequencyView:
        """The same filters with effective sizes at another energy share; spectra and fits reused."""
        sizes = [analysis.effective_size(filters, energy=energy) for _, filters in self.layers]
        summary = replace(self.summary, energy=float(energy), effective_sizes=sizes)
        fitted = [{**fit, "mean effective size": float(size.to(torch.float64).mean())}
                  for fit, size in zip(self.fitted, sizes)]
        return FrequencyView(summary, fitted, self.layers, self.white_noise)

    def table(self) -> list[dict]:
        """One row per layer: effective sizes (mean, 10% and 90% quantiles, share filling the
        whole k x k window), the half-max frequency of its radial profile (None: it never falls
        to half) and, for a run, the fitted sigma and its r."""
        s = self.summary
        fits = {fit["layer"]: fit for fit in self.fitted}
        rows = []
        for name, sizes, profile in zip(s.names, s.effective_sizes, s.profiles):
            sizes = sizes.to(torch.float64)
            row = {"layer": name, "mean effective size": float(sizes.mean()),
                   "effective size 10%": float(torch.quantile(sizes, 0.1)),
                   "effective size 90%": float(torch.quantile(sizes, 0.9)),
                   "share at full size": float((sizes == s.kernel_size).to(torch.float64).mean()),
                   "half-max frequency": analysis.half_max_frequency(profile, s.size)}
            if name in fits:
                row.update({"fitted sigma": fits[name]["sigma"], "fit r": fits[name]["r"]})
            rows.append(row)
        return rows


def frequency_view(source: str, *, kernel_size: int = 9, n: int = 1024, sigma: float | None = None,
                   run: train.RunResult | CheckpointFilters | None = None, seed: int = 0, energy: float = 0.9,
                   size: int = 64) -> FrequencyView:
    """Filters of `source` (see source_layers), their spectra and effective sizes, and a run's
    layers placed at their fitted sigma with their half-max frequency (against sigma_curve)."""
    layers = source_layers(source, kernel_size=kernel_size, n=n, sigma=sigma, run=run, seed=seed)
    summary = frequency_summary(layers, size=max(size, layers[0][1].shape[-1]), energy=energy)
    fitted = []
    if run is not None and source in NETWORK_SOURCES and len(run.covariances) == len(layers):
        for (name, _), S, sizes, profile in zip(layers, run.covariances, summary.effective_sizes,
                                                summary.profiles):
            fit, r = covariance.fit_sigma(S)
            fitted.append({"layer": name, "sigma": fit, "r": r,
                           "mean effective size": float(sizes.to(torch.float64).mean()),
                           "half-max frequency": analysis.half_max_frequency(profile, summary.size)})
    white_noise = None
    if source != WHITE_NOISE:
        white_noise = _scheme_profile(WHITE_NOISE, summary.kernel_size, min(n, 1024), summary.size, seed)
    return FrequencyView(summary, fitted, layers, white_noise)
