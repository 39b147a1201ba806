"""A model after training and the same model at its initialization (ModelPair), the pair the CNFA
check compares (cnfa.py): a small plain CNN trained here (seed 001's setting: conv weights
N(0, 0.005^2) in the first layer, N(0, 0.01^2) after, so the trained filters are almost all
learned), a saved run with weights, or a user's checkpoint beside the same architecture at
PyTorch's default init.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from . import analysis, data, models, train
from .runs import RunStore
from .validation import whole_number

Tensor = torch.Tensor

#: Embedded datasets a small CNN can be trained on here, and which of them take a noise level.
CNN_DATASETS = ("mnist5k", "noisy-bars", "noisy-mnist")
NOISY_DATASETS = ("noisy-bars", "noisy-mnist")


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
        whole_number(value, what, 1)
    if kernel_size is not None:
        whole_number(kernel_size, "kernel size", 1)
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


def initial_cnn(config: train.TrainConfig, small_init: bool = True) -> nn.Module:
    """The plain CNN of `config` at init, as train_cnn starts it (for a time estimate before it trains)."""
    return _initial_cnn(config, train.load_training_data(config)[4], small_init)


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
