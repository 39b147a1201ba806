"""Which trials train together: compatible configs (the same settings but MEMBER_FIELDS, a network
that grouping supports) in groups that fit in memory.

Memory of one member while it trains, estimated from one image through its network:
    bytes = 16 P + 1.5 s B A
P parameters (fp32 weights, gradients and AdamW's two moments), A values in the outputs of its layers
per image, s bytes per value (4 in fp32, 2 under bf16 autocast), B the batch size: the outputs kept
for the backward pass and half as much again for gradients in flight. Measured on ConvMixer-256/8 at
batch 128 on 32 x 32 images (peak resident memory of 1, 2 and 4 members): 1.77 GB per member in fp32
and 0.94 GB in bf16, against estimates of 2.5 and 1.3 GB. A group
holds at most floor(MEMORY_SHARE x available / bytes) members (available: free GPU memory, or the
system's MemAvailable on the CPU); larger sets of compatible trials are split into equal groups.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import torch
from torch import nn

from ..step import autocast_dtype
from ..train import TrainConfig, build_model_for, load_training_data, plan_steps, resolve_device
from .grouping import grouping_problem

#: Settings in which the members of an ensemble may differ; they share every other one.
MEMBER_FIELDS = ("seed", "init", "sigma_first", "sigma_last", "covariances", "n_covariances", "freeze_filters",
                 "keep_state_dict")
MEMORY_SHARE = 0.8  # of the memory available when a group is planned


def pays_off(config: TrainConfig) -> bool:
    """Whether runs of config train together by default: on accelerators, which a lone small network
    leaves mostly idle; not on the CPU, where one ConvMixer-64/8 step grouped over 4-16 members
    measured 0.8-0.9x the speed of lone steps (docs/performance.md)."""
    return resolve_device(config.device).type != "cpu"


def use_ensemble(config: TrainConfig, ensemble: bool | None) -> bool:
    """ensemble, or pays_off(config) when it is None (the default of compare, the Lab and sweeps)."""
    return pays_off(config) if ensemble is None else ensemble


def ensemble_key(config: TrainConfig) -> str:
    """The settings every member of an ensemble shares (config.to_dict() but MEMBER_FIELDS), as JSON."""
    shared = {k: v for k, v in config.to_dict().items() if k not in MEMBER_FIELDS}
    return json.dumps(shared, sort_keys=True, default=str)


@functools.lru_cache(maxsize=4)
def _template(key: str) -> tuple[nn.Module, str | None]:
    """(a member's network on the CPU, why grouping cannot train it or None) for an ensemble_key."""
    config = TrainConfig.from_dict(json.loads(key))
    info = load_training_data(config)[4]
    model = build_model_for(config, info)
    return model, grouping_problem(model, info.in_chans, info.image_size)


def grouping_problem_for(config: TrainConfig) -> str | None:
    """Why config's network cannot be trained in an ensemble, or None (grouping.grouping_problem)."""
    return _template(ensemble_key(config))[1]


def compatible(configs: list[TrainConfig]) -> bool:
    """Whether the configs can train as one ensemble: all share ensemble_key, and grouping supports
    their network."""
    keys = {ensemble_key(c.validate()) for c in configs}
    return len(keys) == 1 and grouping_problem_for(configs[0]) is None


@torch.no_grad()
def member_bytes(model: nn.Module, in_chans: int, image_size: int, batch_size: int, value_bytes: int = 4) -> int:
    """Bytes one member needs while it trains: 16 P + 1.5 s B A, s = value_bytes (module docstring)."""
    values = []
    hooks = [m.register_forward_hook(lambda module, args, out: values.append(out.numel()))
             for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        model.eval()(torch.zeros(1, in_chans, image_size, image_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    n_params = sum(p.numel() for p in model.parameters())
    return 16 * n_params + 3 * value_bytes * batch_size * sum(values) // 2


def available_bytes(device: torch.device) -> int | None:
    """Memory free for a new group now: free GPU memory, the system's MemAvailable on the CPU; None
    where it cannot be read (then groups are not limited)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            lines = Path("/proc/meminfo").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def max_members(config: TrainConfig, model: nn.Module, memory_budget: int | None = None) -> int | None:
    """How many members of config's network fit in memory_budget bytes (default MEMORY_SHARE of
    available_bytes), at least 1; None when nothing limits it."""
    if memory_budget is None:
        available = available_bytes(resolve_device(config.device))
        if available is None:
            return None
        memory_budget = int(MEMORY_SHARE * available)
    return max(1, memory_budget // config_member_bytes(config, model))


def config_member_bytes(config: TrainConfig, model: nn.Module) -> int:
    """member_bytes of config's network at its batch size and precision on its device."""
    _, train_y, _, _, info = load_training_data(config)
    batch = plan_steps(config, len(train_y))[0]
    dtype = autocast_dtype(config.precision, resolve_device(config.device)) or torch.float32
    return member_bytes(model, info.in_chans, info.image_size, batch, torch.finfo(dtype).bits // 8)


def split_evenly(indices: list[int], most: int | None) -> list[list[int]]:
    """indices in ceil(len / most) consecutive groups of sizes that differ by at most one."""
    n_groups = 1 if most is None else math.ceil(len(indices) / most)
    size, extra = divmod(len(indices), n_groups)
    groups, start = [], 0
    for g in range(n_groups):
        end = start + size + (g < extra)
        groups.append(indices[start:end])
        start = end
    return groups


def group_compatible(configs: list[TrainConfig], *, memory_budget: int | None = None) -> list[list[int]]:
    """The configs' indices in groups that train as one ensemble each, ordered by their first index:
    configs sharing ensemble_key, split by max_members; a config whose network grouping does not
    support (grouping_problem_for) is a group of its own, trained alone."""
    by_key: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        by_key.setdefault(ensemble_key(config.validate()), []).append(i)
    groups = []
    for key, indices in by_key.items():
        model, problem = _template(key)
        if problem is not None or len(indices) == 1:
            groups += [[i] for i in indices]
        else:
            groups += split_evenly(indices, max_members(configs[indices[0]], model, memory_budget))
    return sorted(groups)
