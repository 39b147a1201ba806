"""The regime a training run measures: model width and depth, its depthwise filters against the
feature maps they see, the training steps and the data (regime_of). Every verdict names it, so a
result on 14 x 14 digit maps for 31 steps is never read as one about CIFAR-10 for tens of epochs.

A k x k 'same' depthwise filter on n x n maps only ever uses its central min(k, 2n - 1) weights
(models.KernelReach); with k >= n a filter already sees the whole map (wider_than_map).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import models
from .text import number
from .train import TrainConfig, build_model_for, load_training_data, model_label, plan_steps

#: The paper's regime (seed 000): ConvMixer on CIFAR-10 and ImageNet, hundreds of channels, k = 9
#: on 32 x 32 maps (patch 1 or 2 on CIFAR-10), tens of epochs.
PAPER_REGIME = ("ConvMixer-256/8 and wider, 9 x 9 filters on 16 x 16 or 32 x 32 maps, CIFAR-10 for tens of "
                "epochs (thousands of steps) and ImageNet")


@dataclass(frozen=True)
class Regime:
    """What one training config measures. map_side: the side of the smallest feature map a depthwise
    filter sees (None for models without square depthwise filters)."""

    model: str
    width: int | None
    depth: int | None
    kernel: int | None
    map_side: int | None
    steps: int
    epochs: int
    dataset: str
    image_size: int
    n_train: int

    @property
    def wider_than_map(self) -> bool:
        """k > n: the filter is wider than its n x n map and sees all of it from every position."""
        return self.kernel is not None and self.map_side is not None and self.kernel > self.map_side

    def filters_text(self) -> str:
        if self.kernel is None or self.map_side is None:
            return "no square depthwise filters"
        k, n = self.kernel, self.map_side
        relation = " (wider than the map)" if k > n else " (as wide as the map)" if k == n else ""
        return f"{k} x {k} filters on {n} x {n} maps{relation}"

    def describe(self) -> str:
        """'convmixer-64/8, 9 x 9 filters on 14 x 14 maps, 39 steps (1 epoch), mnist5k (5,000 28 x 28 images)'."""
        epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        return (f"{self.model}, {self.filters_text()}, {number(self.steps, ',.0f')} steps ({epochs}), "
                f"{self.dataset} ({number(self.n_train, ',.0f')} {self.image_size} x {self.image_size} images)")

    def to_dict(self) -> dict:
        return {"model": self.model, "width": self.width, "depth": self.depth, "kernel": self.kernel,
                "map_side": self.map_side, "steps": self.steps, "epochs": self.epochs, "dataset": self.dataset,
                "image_size": self.image_size, "n_train": self.n_train, "wider_than_map": self.wider_than_map,
                "text": self.describe()}


def regime_of(config: TrainConfig) -> Regime:
    """The regime `config` trains in: its data's size (train.load_training_data), its steps
    (train.plan_steps) and the smallest map any of its depthwise layers sees (models.depthwise_reach
    on one zero image). ValueError when the model does not take the data's images."""
    train_x, *_, info = load_training_data(config)
    _, _, steps = plan_steps(config, len(train_x))
    spec = models.parse_spec(config.model)
    model = build_model_for(config.replace(init="default"), info)
    reach = models.depthwise_reach(model, info.in_chans, info.image_size, model_label(config), config.dataset)
    square = [r for r in reach if r.kernel[0] == r.kernel[1]]
    kernel = max((r.kernel[0] for r in square), default=None)
    side = min((r.side for r in square), default=None)
    return Regime(config.model, spec["dim"], spec["depth"], kernel, side, steps, config.epochs, config.dataset,
                  info.image_size, len(train_x))
