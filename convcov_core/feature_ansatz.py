"""What the Feature Ansatz and Frequency View pages compute: a model trained and at init, their CNFA
check, eigenfilters and feature maps (seed 001); filters of a scheme or a run, their spectra and
effective sizes (seed 002). No streamlit here: the pages call these with widget values.

CNFA check (seed 001): per conv layer, r = pearson(M, W^T W) with M the patch-AGOP of the model's
outputs; the ansatz says r is high after training and is a consequence of training, so the same
model at its initialization is the control.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import analysis, covariance, data, init, models, train
from .runs import RunStore

Tensor = torch.Tensor

#: Embedded datasets a small CNN can be trained on here, and which of them take a noise level.
CNN_DATASETS = ("mnist5k", "noisy-bars", "noisy-mnist")
NOISY_DATASETS = ("noisy-bars", "noisy-mnist")
#: Pictures from scikit-image for the feature maps (grayscale luminance, resized).
NATURAL_IMAGES = data.TEXTURE_PICTURES


def _whole(value, what: str, minimum: int) -> int:
    """value as an int >= minimum (not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# A small plain CNN, trained here


def cnn_config(dataset: str = "mnist5k", *, noise: float = 0.5, layers: int = 3, width: int = 32,
               kernel_size: int | None = None, epochs: int = 2, batch_size: int = 64, lr: float = 0.01,
               seed: int = 0, max_steps: int | None = None, dataset_params: dict | None = None
               ) -> train.TrainConfig:
    """The training config of a plain CNN (`layers` conv blocks of `width` channels, k x k filters,
    ReLU, 2 x 2 max pooling; models.SmallCNN) on an embedded dataset; AdamW, one-cycle schedule,
    fp32 (from seed 001's tiny init, bf16 autocast gave 2.1-3.3 points lower test accuracy on
    mnist5k after 2 epochs: `convcov cnfa --precision bf16`, seeds 0 and 1).

    kernel_size: every layer's k, or None for 5 x 5 in the first layer and 3 x 3 after.
    noise: the background noise std of noisy-bars / noisy-mnist (ignored for mnist5k);
    dataset_params: further dataset options (e.g. n_train for a tiny test run).
    """
    if dataset not in CNN_DATASETS:
        raise ValueError(f"the small CNN trains on {', '.join(CNN_DATASETS)}, not {dataset!r}")
    for value, what in ((layers, "layers"), (width, "width")):
        _whole(value, what, 1)
    if kernel_size is not None:
        _whole(kernel_size, "kernel size", 1)
    params = dict(dataset_params or {})
    if dataset in NOISY_DATASETS:
        params["noise"] = float(noise)
    config = train.TrainConfig(dataset=dataset, dataset_params=params,
                               model="cnn-" + ",".join([str(width)] * layers), kernel_size=kernel_size,
                               patch_size=None, init="default", epochs=epochs, batch_size=batch_size,
                               lr=lr, seed=seed, max_steps=max_steps, keep_state_dict=True,
                               precision="fp32")
    return config.validate()


@dataclass
class ModelPair:
    """A model after training and the same model at its initialization, with where it came from."""

    label: str
    trained: nn.Module
    initial: nn.Module
    config: train.TrainConfig
    info: data.DatasetInfo
    test_acc: float | None = None
    run: train.RunResult | None = None  # a training run not yet in the run store (train_cnn)


#: Seed 001's CNFA experiments: conv weights N(0, 0.005²) in the first layer, N(0, 0.01²) after.
SMALL_INIT_STD = (5e-3, 1e-2)


@torch.no_grad()
def small_normal_init_(model: nn.Module, first: float = SMALL_INIT_STD[0],
                       rest: float = SMALL_INIT_STD[1]) -> nn.Module:
    """Conv weights ~ N(0, first²) in the first conv layer and N(0, rest²) in the others, in place
    (other parameters untouched). With weights this small the trained filters are almost all
    learned, not left over from the init."""
    for i, (_, conv) in enumerate(analysis.conv_layers(model)):
        conv.weight.normal_(0.0, first if i == 0 else rest)
    return model


def _initial_cnn(config: train.TrainConfig, info: data.DatasetInfo, small_init: bool) -> nn.Module:
    """The config's plain CNN at init (PyTorch's default, or small_normal_init_), seeded by
    config.seed (the caller's RNG state is left alone)."""
    if models.parse_spec(config.model)["kind"] != "cnn":
        raise ValueError(f"train_cnn trains plain CNNs ('cnn-<w1>,<w2>,...'), not {config.model!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = models.build_model(config.model, num_classes=len(info.classes), in_chans=info.in_chans,
                                   kernel_size=config.kernel_size)
        return small_normal_init_(model) if small_init else model


#: How a saved small-CNN run records its init in RunResult.variant (TrainConfig.init names
#: depthwise-filter schemes, which a plain CNN does not have).
CNN_INITS = {True: "small-normal", False: "pytorch-default"}
SAVED_CNN_NAME = "feature-ansatz"


def train_cnn(config: train.TrainConfig, callback: train.Callback | None = None, *,
              small_init: bool = True) -> ModelPair | None:
    """Train the plain CNN of `config` (see cnn_config) with train.train's engine, from
    small_normal_init_ (seed 001's setting, the default) or PyTorch's default init, and keep a
    copy of it at initialization.

    `callback` gets train.train's ProgressEvents and may answer True / "stop" to cancel: None is
    returned then. A diverging run raises ValueError. The pair's `run` is the RunResult to save
    (weights kept, variant naming the init: CNN_INITS).
    """
    config = config.replace(keep_state_dict=True)
    _, _, _, _, info = train.load_training_data(config)
    initial = _initial_cnn(config, info, small_init).eval()
    run = train.train(config, callback, variant=CNN_INITS[small_init], model=copy.deepcopy(initial))
    if run.status == "cancelled":
        return None
    if run.status != "ok":
        raise ValueError(f"training {run.status}: {run.message}")
    trained = copy.deepcopy(initial)
    models.load_checkpoint_into(trained, run.state_dict)
    init_name = "small normal init" if small_init else "PyTorch default init"
    label = f"{describe_model(config)}, {init_name}, trained here on {describe_dataset(config)}"
    return ModelPair(label, trained.eval(), initial, config, info, run.final["test_acc"], run)


def train_cnn_and_save(config: train.TrainConfig, callback: train.Callback | None = None, *,
                       small_init: bool = True, store: RunStore | None = None) -> ModelPair | None:
    """train_cnn, and the finished run saved in the run store (named SAVED_CNN_NAME) so that
    pair_from_run can rebuild it later; the pair's label starts with the run's id."""
    pair = train_cnn(config, callback, small_init=small_init)
    if pair is None:
        return None
    run_id = (store or RunStore()).save(pair.run, name=SAVED_CNN_NAME)
    pair.label = f"run #{run_id}: {pair.label}"
    return pair


def saved_cnn(config: train.TrainConfig, small_init: bool, store: RunStore | None = None) -> int | None:
    """The id of the newest finished CNN that train_cnn_and_save saved with exactly this config and
    init, or None: what the page would train again."""
    store = store or RunStore()
    for summary in store.list():  # newest first
        if (summary.name == SAVED_CNN_NAME and summary.variant == CNN_INITS[small_init]
                and summary.has_weights and summary.status == "ok"
                and (summary.model, summary.dataset, summary.seed) == (config.model, config.dataset, config.seed)
                and store.get(summary.id).config == config):
            return summary.id
    return None


def training_images(config: train.TrainConfig) -> int:
    """Images a training run goes through (full batches x steps), for a server's per-job cap."""
    batch, _, total = train.plan_steps(config, len(train.load_training_data(config)[1]))
    return batch * total


def describe_model(config: train.TrainConfig) -> str:
    """'cnn-32,32,32 (5 x 5, then 3 x 3)' or 'convmixer-64/6 (k = 9)'."""
    if config.kernel_size is None and models.parse_spec(config.model)["kind"] == "cnn":
        return f"{config.model} (5 x 5, then 3 x 3 filters)"
    return f"{config.model} (k = {config.kernel_size})"


def describe_dataset(config: train.TrainConfig) -> str:
    """'mnist5k' or 'noisy-bars (noise 0.5)'."""
    noise = config.dataset_params.get("noise")
    return config.dataset + (f" (noise {noise:g})" if noise is not None else "")


# ---------------------------------------------------------------------------------------------
# A saved run


def pair_from_run(run: train.RunResult, name: str | None = None) -> ModelPair:
    """The run's trained model (from its saved state dict) and the same model at initialization,
    rebuilt from the run's config and seed exactly as train.train (or, for a plain CNN,
    train_cnn with the init its variant names) built it. Its label starts with `name`, by
    default "run #<id>"."""
    if not run.state_dict:
        raise ValueError(f"run {run.id} saved no weights, so its model cannot be analysed; train it "
                         "again with the weights kept (keep_state_dict)")
    _, _, _, _, info = train.load_training_data(run.config)
    if models.parse_spec(run.config.model)["kind"] == "cnn":  # saved by train_cnn_and_save
        initial = _initial_cnn(run.config, info, small_init=run.variant != CNN_INITS[False]).eval()
    else:
        initial = train.build_model_for(run.config, info).eval()
    trained = copy.deepcopy(initial)
    models.load_checkpoint_into(trained, run.state_dict)
    acc = run.final.get("test_acc")
    label = f"{name or f'run #{run.id}'}: {describe_model(run.config)} on {describe_dataset(run.config)}"
    return ModelPair(label, trained.eval(), initial, run.config, info, acc)


#: The init a checkpoint's control model gets: its own init is not in the file.
CHECKPOINT_CONTROL_SEED = 0


def pair_from_state_dict(state: dict[str, Tensor], architecture: str, source: str,
                         dataset: str) -> ModelPair:
    """A user's checkpoint (models.model_from_state_dict) and, as the control, the same
    architecture at PyTorch's default init (seed CHECKPOINT_CONTROL_SEED: the checkpoint's own
    init is unknown), analysed on `dataset`'s test images; ValueError unless those images fit the
    model (channels and size; textures come in colour for a 3-channel model). No test accuracy:
    the checkpoint's classes need not be the dataset's."""
    trained, layout = models.model_from_state_dict(state, architecture)
    params = {"color": True} if dataset == "textures" and layout["in_chans"] == 3 else {}
    config = train.TrainConfig(dataset=dataset, dataset_params=params, model=layout["spec"],
                               kernel_size=layout["kernel_size"], patch_size=layout["patch_size"],
                               seed=CHECKPOINT_CONTROL_SEED).validate()
    _, _, _, _, info = train.load_training_data(config)
    if info.in_chans != layout["in_chans"]:
        raise ValueError(f"{source} takes {layout['in_chans']}-channel images but {dataset} has "
                         f"{info.in_chans}-channel ones: pick a dataset with {layout['in_chans']}-channel "
                         "images for the AGOP")
    label = f"{source}: {describe_model(config)}"
    models.check_input_size(trained, info.in_chans, info.image_size, label, dataset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(CHECKPOINT_CONTROL_SEED)
        initial = models.build_model(layout["spec"], num_classes=layout["num_classes"],
                                     in_chans=layout["in_chans"], kernel_size=layout["kernel_size"],
                                     patch_size=layout["patch_size"])
    control = f"against the same architecture at PyTorch's default init (seed {CHECKPOINT_CONTROL_SEED})"
    return ModelPair(f"{label}, {control}", trained, initial.eval(), config, info)


def pair_from_checkpoint(data: bytes, filename: str, architecture: str, dataset: str, *,
                         max_bytes: int = models.DEFAULT_MAX_CHECKPOINT_BYTES) -> ModelPair:
    """pair_from_state_dict of an uploaded file (models.read_checkpoint_bytes: no code in it runs)."""
    state = models.read_checkpoint_bytes(data, filename, max_bytes=max_bytes)
    return pair_from_state_dict(state, architecture, filename, dataset)


def analysis_images(config: train.TrainConfig, n: int) -> Tensor:
    """The first n test images of the config's dataset (N, C, H, W), normalized as in training."""
    n = _whole(n, "number of images", 1)
    _, _, test_x, _, _ = train.load_training_data(config)
    return test_x[:n]


# ---------------------------------------------------------------------------------------------
# The CNFA check, trained vs at init


@dataclass
class CNFAComparison:
    """cnfa_report rows of the trained model and of the same model at init (same layers, order)."""

    trained: list[dict]
    initial: list[dict]
    n_images: int
    outputs: str | int

    def table(self) -> list[dict]:
        """One row per layer: r(AGOP, CNFM) trained and at init, and how far training moved the CNFM
        (Pearson r between the CNFM at init and after training; the seed's control)."""
        rows = []
        for t, i in zip(self.trained, self.initial):
            rows.append({
                "layer": t["name"], "kind": t["kind"],
                "filters": f"{t['out_channels']} x {t['in_channels'] if t['kind'] == 'regular' else 1}"
                           f" x {t['kernel_size']}²",
                "matrix": t["matrix_size"],
                "r trained": t["r"], "r at init": i["r"],
                "r(CNFM init, CNFM trained)": analysis.pearson(i["cnfm"], t["cnfm"]),
            })
        return rows

    def first_spatial_layer(self) -> str:
        """The first layer with k x k filters, k >= 3 (a ConvMixer starts with a p x p patch
        embedding), else the first layer."""
        for row in self.trained:
            if isinstance(row["kernel_size"], int) and row["kernel_size"] >= 3:
                return row["name"]
        return self.trained[0]["name"]

    def row(self, layer: str, which: str = "trained") -> dict:
        rows = self.trained if which == "trained" else self.initial
        for row in rows:
            if row["name"] == layer:
                return row
        raise ValueError(f"no layer {layer!r}; layers: {[r['name'] for r in rows]}")


def compare_cnfa(pair: ModelPair, inputs: Tensor, *, outputs="all", batch_size: int = 64,
                 progress: Callable[[float], None] | None = None) -> CNFAComparison:
    """cnfa_report of the trained model and of the model at init on the same inputs.

    progress(fraction done in [0, 1]) after every batch of either model.
    """
    def relay(offset: float):
        return None if progress is None else (lambda done, total: progress(offset + 0.5 * done / total))

    trained = analysis.cnfa_report(pair.trained, inputs, outputs=outputs, batch_size=batch_size,
                                   progress=relay(0.0))
    initial = analysis.cnfa_report(pair.initial, inputs, outputs=outputs, batch_size=batch_size,
                                   progress=relay(0.5))
    return CNFAComparison(trained, initial, int(inputs.shape[0]), outputs)


# ---------------------------------------------------------------------------------------------
# Eigenfilters and feature maps


def spatial_matrix(M: Tensor, in_chans: int, kernel_size: int) -> Tensor:
    """The k^2 x k^2 spatial part of a (c k^2) x (c k^2) patch matrix: the mean of its c diagonal
    channel blocks (M itself when c = 1)."""
    side = kernel_size * kernel_size
    M = torch.as_tensor(M, dtype=torch.float64)
    if M.shape != (in_chans * side, in_chans * side):
        raise ValueError(f"M is {tuple(M.shape)}, expected {in_chans * side} x {in_chans * side}")
    blocks = M.reshape(in_chans, side, in_chans, side)
    return blocks.diagonal(dim1=0, dim2=2).mean(dim=-1)


def eigenfilters(row: dict, matrix: str = "agop", n: int = 8) -> tuple[Tensor, Tensor]:
    """(share of the trace held by each eigenvalue, top-n eigenvectors as (n, k, k) filters) of a
    cnfa_report row's AGOP or CNFM; for a layer with several input channels, of its spatial part
    (spatial_matrix): what the layer looks for in every channel's k x k patch."""
    if matrix not in ("agop", "cnfm"):
        raise ValueError(f"matrix must be 'agop' or 'cnfm', got {matrix!r}")
    k = row["kernel_size"]
    if not isinstance(k, int):
        raise ValueError(f"layer {row['name']} has a non-square kernel {k}; eigenfilters need k x k")
    channels = row["in_channels"] if row["kind"] == "regular" else 1
    M = spatial_matrix(row[matrix], channels, k)
    values, vectors = analysis.top_eigenvectors(M, min(n, k * k), k)
    trace = float(torch.trace(M))
    shares = values / trace if trace > 0 else torch.zeros_like(values)
    return shares, vectors[:, 0]


def natural_images(names, size: int, info: data.DatasetInfo) -> Tensor:
    """scikit-image pictures (grayscale, centre-cropped square, resized to size x size) normalized
    with the dataset's mean and std, on as many channels as the dataset has: (N, C, size, size)."""
    pictures = data.texture_pictures(color=False)
    size = _whole(size, "image size", 8)
    out = []
    for name in names:
        if name not in pictures:
            raise ValueError(f"unknown picture {name!r}; choose from {', '.join(pictures)}")
        picture = torch.from_numpy(pictures[name])
        side = min(picture.shape)
        top, left = (picture.shape[0] - side) // 2, (picture.shape[1] - side) // 2
        square = picture[top:top + side, left:left + side][None, None]
        out.append(F.interpolate(square, size=(size, size), mode="area")[0])
    images = torch.stack(out).repeat(1, info.in_chans, 1, 1)
    mean = torch.tensor(info.mean, dtype=images.dtype)[None, :, None, None]
    std = torch.tensor(info.std, dtype=images.dtype)[None, :, None, None]
    return (images - mean) / std


def layer_feature_maps(model: nn.Module, matrices: dict[str, Tensor], image: Tensor) -> dict[str, Tensor]:
    """||M^(1/2) patch|| maps (analysis.feature_map) of one image (C, H, W) for each named conv layer,
    M = matrices[name], each applied to that layer's own input in one forward pass of the model."""
    convs = dict(analysis.conv_layers(model))
    missing = [name for name in matrices if name not in convs]
    if missing:
        raise ValueError(f"no conv layer {missing}; conv layers: {list(convs)}")
    inputs: dict[str, Tensor] = {}
    hooks = [convs[name].register_forward_pre_hook(
        lambda module, args, name=name: inputs.__setitem__(name, args[0].detach()))
        for name in matrices]
    was_training = model.training
    try:
        model.eval()
        weight = next(iter(convs.values())).weight
        with torch.no_grad():
            model(torch.as_tensor(image)[None].to(device=weight.device, dtype=weight.dtype))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return {name: analysis.feature_map(M, inputs[name][0], convs[name]) for name, M in matrices.items()}


def to_pixels(image: Tensor, info: data.DatasetInfo) -> np.ndarray:
    """A normalized (C, H, W) image back on its [0, 1]-ish pixel scale, as an H x W array (channel
    mean) for display."""
    mean = torch.tensor(info.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(info.std, dtype=torch.float64)[:, None, None]
    return (torch.as_tensor(image, dtype=torch.float64) * std + mean).mean(dim=0).numpy()


# ---------------------------------------------------------------------------------------------
# Frequency view: filters of a scheme or a run, their spectra and effective sizes


#: Where the Frequency View's filters come from: a scheme's samples or a saved run.
FREQUENCY_SOURCES = ("gaussian", "default", "learned", "trained")


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
    """A checkpoint's depthwise filters with their centered covariances (lab.learned_from_state_dict);
    `source` names it."""
    from .lab import learned_from_state_dict

    learned = learned_from_state_dict(state, architecture, source)
    return CheckpointFilters(source, learned.layer_names, learned.covariances, state)


def filters_from_checkpoint(data: bytes, filename: str, architecture: str, *,
                            max_bytes: int = models.DEFAULT_MAX_CHECKPOINT_BYTES) -> CheckpointFilters:
    """filters_from_state_dict of an uploaded file (models.read_checkpoint_bytes: no code in it runs)."""
    state = models.read_checkpoint_bytes(data, filename, max_bytes=max_bytes)
    return filters_from_state_dict(state, architecture, filename)


def source_layers(source: str, *, kernel_size: int = 9, n: int = 1024, sigma: float | None = None,
                  run: train.RunResult | CheckpointFilters | None = None,
                  seed: int = 0) -> list[tuple[str, Tensor]]:
    """(layer name, filters (N, k, k)) for the Frequency View.

    "gaussian" / "default": n filters of one k x k layer as that init scheme draws them (sigma for
    the closed form). "learned": n filters per layer of `run` (a saved run, or a user's checkpoint
    as CheckpointFilters), drawn from its learned covariances at its own kernel size. "trained":
    its trained depthwise filters (the saved weights).
    """
    if source not in FREQUENCY_SOURCES:
        raise ValueError(f"unknown filter source {source!r}; choose one of {', '.join(FREQUENCY_SOURCES)}")
    generator = torch.Generator().manual_seed(int(seed))
    if source in ("gaussian", "default"):
        name = f"Gaussian σ = {sigma:g}" if source == "gaussian" and sigma is not None else source
        return [(name, init.sample_scheme(source, kernel_size, n, sigma=sigma, generator=generator))]
    if run is None:
        raise ValueError(f"the {source!r} source needs a saved run or a checkpoint")
    if source == "learned":
        if not run.covariances:
            raise ValueError(f"run {run.id} saved no covariances")
        names = run.layer_names if len(run.layer_names) == len(run.covariances) else [
            f"layer {i + 1}" for i in range(len(run.covariances))]
        k = covariance.kernel_size_of(run.covariances[0])
        return [(name, init.sample_scheme("learned", k, n, covariance=c, generator=generator))
                for name, c in zip(names, run.covariances)]
    if not run.state_dict:
        raise ValueError(f"run {run.id} saved no weights, only covariances: pick 'learned covariance' "
                         "for it, or train it again with its weights kept")
    layers = []
    for name in run.layer_names:
        weight = run.state_dict.get(f"{name}.weight")
        if weight is None or weight.dim() != 4:
            raise ValueError(f"run {run.id} has no depthwise weight {name}.weight in its state dict")
        layers.append((name, weight.detach().to(torch.float64).reshape(-1, *weight.shape[-2:])))
    if not layers:
        raise ValueError(f"run {run.id} has no depthwise layers")
    return layers


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


@dataclass
class SigmaCurve:
    """Smoothness of closed-form Gaussian filters against sigma: the half-max frequency
    (analysis.half_max_frequency, cycles/pixel) of their mean |FFT| per sigma, and that of
    PyTorch's default i.i.d. filters as the reference (None: white noise never falls to half)."""

    kernel_size: int
    sigmas: list[float]
    half_max: list[float | None]
    default_half_max: float | None


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
                seed: int = 0) -> SigmaCurve:
    """For each sigma: the half-max frequency of the mean |FFT| (zero-padded to size x size) of n
    filters drawn from the Gaussian closed form; it falls as 1/sigma (about sqrt(ln 2) / (pi
    sigma) for a window much wider than sigma), while their effective size stays at k."""
    sigmas = [covariance.check_sigma(s, "sigma") for s in sigmas]
    if not sigmas:
        raise ValueError("need at least one sigma")
    size = max(size, kernel_size)
    half_max = [_half_max_of("gaussian", kernel_size, n, size, seed, sigma) for sigma in sigmas]
    return SigmaCurve(int(kernel_size), sigmas, half_max, _half_max_of("default", kernel_size, n, size, seed))


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
    if run is not None and source in ("learned", "trained") and len(run.covariances) == len(layers):
        for (name, _), S, sizes, profile in zip(layers, run.covariances, summary.effective_sizes,
                                                summary.profiles):
            fit, r = covariance.fit_sigma(S)
            fitted.append({"layer": name, "sigma": fit, "r": r,
                           "mean effective size": float(sizes.to(torch.float64).mean()),
                           "half-max frequency": analysis.half_max_frequency(profile, summary.size)})
    white_noise = None
    if source != "default":
        white_noise = _scheme_profile("default", summary.kernel_size, min(n, 1024), summary.size, seed)
    return FrequencyView(summary, fitted, layers, white_noise)
