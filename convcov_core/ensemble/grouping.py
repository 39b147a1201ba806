"""N networks of one architecture as one network whose layers are grouped over the members.

Channel c of member m is channel m C + c of the grouped network (member-major), layer by layer:
    Conv2d(C_in, C_out, groups=g)   ->  Conv2d(N C_in, N C_out, groups=N g)
    BatchNorm2d(C)                  ->  BatchNorm2d(N C): per-channel statistics, so each member's own
    Linear(F, K) on B x F           ->  GroupedLinear: y[b, m] = W_m x[b, m] + b_m
    elementwise layers, pooling, flatten, Dropout(p=0), and the containers holding them: unchanged
so it maps B x (N C) x H x W images (member m's batch in its own channels) to B x (N K) scores, and a
member's scores and gradients depend only on its own weights and images (a member that diverges
leaves the others' numbers as they were). Every state tensor of the grouped network is its members'
tensors concatenated on dim 0 (stack_states, select_rows); 0-d ones (num_batches_tracked) are shared.
Layers outside this list (LayerNorm over channels, layer scale, attention, timm's BatchNormAct2d,
dropout > 0, whose masks would differ from a lone run's) make a network unsupported
(unsupported_layer), and grouping_problem checks on a probe batch that two members' grouped scores
equal their own: a container whose forward mixes channels is caught there.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..train.inputs import gather_images

Tensor = torch.Tensor

#: Layers without state that act per channel: kept as they are in the grouped network.
PER_CHANNEL_LAYERS = (nn.GELU, nn.ReLU, nn.ReLU6, nn.SiLU, nn.LeakyReLU, nn.Hardswish, nn.Tanh, nn.Sigmoid,
                      nn.Identity, nn.Flatten, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d,
                      nn.MaxPool2d)


class GroupedLinear(nn.Module):
    """N linear layers F -> K on B x (N F) features: y[b, m] = W_m x[b, m] + b_m, as B x (N K);
    weight (N K) x F and bias N K hold the members' weights and biases one after another."""

    def __init__(self, n: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.n = n
        self.weight = nn.Parameter(torch.empty(n * out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(n * out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        features = x.unflatten(1, (self.n, -1)).transpose(0, 1)  # N x B x F
        weight = self.weight.unflatten(0, (self.n, -1)).transpose(1, 2)  # N x F x K
        if self.bias is None:
            y = torch.bmm(features, weight)
        else:
            y = torch.baddbmm(self.bias.unflatten(0, (self.n, 1, -1)), features, weight)
        return y.transpose(0, 1).flatten(1)


def _grouped_conv(conv: nn.Conv2d, n: int) -> nn.Conv2d:
    return nn.Conv2d(n * conv.in_channels, n * conv.out_channels, conv.kernel_size, stride=conv.stride,
                     padding=conv.padding, dilation=conv.dilation, groups=n * conv.groups,
                     bias=conv.bias is not None, padding_mode=conv.padding_mode)


def _grouped_batchnorm(bn: nn.BatchNorm2d, n: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(n * bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                          track_running_stats=bn.track_running_stats)


def _grouped_linear(linear: nn.Linear, n: int) -> GroupedLinear:
    return GroupedLinear(n, linear.in_features, linear.out_features, bias=linear.bias is not None)


#: Layers with state, by exact type (subclasses may compute something else), and their n-member versions.
GROUPED_LAYERS = {nn.Conv2d: _grouped_conv, nn.BatchNorm2d: _grouped_batchnorm, nn.Linear: _grouped_linear}


def _kept_as_is(layer: nn.Module) -> bool:
    """A stateless per-channel layer, or a container of layers without state of its own."""
    if isinstance(layer, nn.Dropout):
        return layer.p == 0
    if isinstance(layer, PER_CHANNEL_LAYERS):
        return True
    own_state = [t for t in (*layer._parameters.values(), *layer._buffers.values()) if t is not None]
    return bool(list(layer.children())) and not own_state


def unsupported_layer(model: nn.Module) -> str | None:
    """'name (Type)' of the first layer that grouping cannot stack, or None when every layer can."""
    for name, layer in model.named_modules():
        if type(layer) not in GROUPED_LAYERS and not _kept_as_is(layer):
            return f"{name or 'the model'} ({type(layer).__name__})"
    return None


def grouped_copy(model: nn.Module, n: int) -> nn.Module:
    """A grouped network of n members laid out like `model` (same module names, so the same state
    dict keys), its weights not yet set: load stack_states(...) into it."""
    grouped = copy.deepcopy(model)

    def group_children_(module: nn.Module) -> None:
        for name, child in module.named_children():
            if type(child) in GROUPED_LAYERS:
                setattr(module, name, GROUPED_LAYERS[type(child)](child, n))
            else:
                group_children_(child)

    group_children_(grouped)
    return grouped


def select_rows(t: Tensor, keep: list[int], n: int) -> Tensor:
    """The rows of members `keep` (in that order) of a tensor holding n members' rows one after
    another on dim 0; a copy of a 0-d tensor, which all members share."""
    if t.dim() == 0:
        return t.clone()
    return torch.cat([t.chunk(n)[m] for m in keep])


def stack_states(states: list[dict]) -> dict:
    """One grouped state dict from the members' state dicts (tensors concatenated on dim 0; 0-d ones
    from the first member)."""
    return {key: torch.cat([s[key] for s in states]) if value.dim() else value.clone()
            for key, value in states[0].items()}


class Ensemble(nn.Module):
    """n members of `template`'s architecture as one network: B x (n C) x H x W images (member_images)
    -> B x n x K scores, member m's from its own channels. Build it with Ensemble.of(members)."""

    def __init__(self, template: nn.Module, n: int):
        super().__init__()
        self.n = n
        self.net = grouped_copy(template, n)

    @classmethod
    def of(cls, members: list[nn.Module]) -> "Ensemble":
        """The members (one architecture; ValueError otherwise) stacked, weights and statistics as they are."""
        ensemble = cls(members[0], len(members))
        try:
            ensemble.net.load_state_dict(stack_states([m.state_dict() for m in members]))
        except (KeyError, RuntimeError) as err:
            raise ValueError(f"ensemble members must share one architecture: {err}") from None
        return ensemble

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).unflatten(1, (self.n, -1))

    def member_state(self, m: int) -> dict:
        """Member m's state dict, as its own network holds it."""
        return {key: select_rows(value, [m], self.n) for key, value in self.net.state_dict().items()}


def member_images(x: Tensor, idx: Tensor, channels_last: bool) -> Tensor:
    """B x (N C) x H x W: member m's images idx[m] (idx: N x B) of the stored images x
    (train.inputs._to_device) in channels m C ... m C + C - 1, channels_last when the run is."""
    images = gather_images(x, idx.reshape(-1), channels_last).unflatten(0, tuple(idx.shape))  # N x B x C x H x W
    grouped = images.transpose(0, 1).flatten(1, 2)
    return grouped.contiguous(memory_format=torch.channels_last) if channels_last else grouped


@torch.no_grad()
def grouping_problem(model: nn.Module, in_chans: int, image_size: int) -> str | None:
    """Why `model` cannot be trained as part of an ensemble (None: it can): a layer that grouping
    cannot stack, or two members (the model and a copy with perturbed weights) whose grouped network
    fails on their probe images or gives other scores than they do alone (a forward that mixes channels)."""
    layer = unsupported_layer(model)
    if layer is not None:
        return f"grouping cannot stack its layer {layer}"
    generator = torch.Generator().manual_seed(0)
    twin = copy.deepcopy(model)
    for p in twin.parameters():
        p.add_(torch.randn(p.shape, generator=generator) * 0.1)
    members = [model, twin]
    was_training = model.training
    for member in members:
        member.eval()
    images = torch.randn(2, 2, in_chans, image_size, image_size, generator=generator)
    alone = torch.stack([member(x) for member, x in zip(members, images)], dim=1)
    try:
        grouped = Ensemble.of(members).eval()(images.transpose(0, 1).flatten(1, 2))
    except RuntimeError as err:
        return f"its grouped network fails on a probe batch ({str(err).splitlines()[0]})"
    finally:
        model.train(was_training)
    if grouped.shape != alone.shape or not torch.allclose(grouped, alone, rtol=1e-4, atol=1e-5):
        return "its grouped network computes other scores than its members (a forward that mixes channels)"
    return None
