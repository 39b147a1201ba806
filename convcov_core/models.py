"""Models: our ConvMixer, a plain CNN, timm models by name, and models rebuilt from checkpoints.

ConvMixer (Trockman & Kolter, "Patches Are All You Need?"), for input x:
    stem:   z = BN(GELU(Conv_{p x p, stride p}(x)))                    patch embedding
    block:  z = BN(GELU(DepthwiseConv_{k x k}(z))) + z                  spatial mixing (the filters
            z = BN(GELU(Conv_{1 x 1}(z)))                               whose covariance we study)
    head:   Linear(mean over positions of z)
"convmixer-<dim>/<depth>-niff" has niff.NIFFDepthwise (filters as large as the map, from an MLP over
frequencies; "-niff-big" with the seed's larger MLP) in place of the k x k depthwise conv; k is then
only the window its filters are read in.
Module names follow timm's ConvMixer (stem / blocks.i / head), so its state dicts load into ours.

Reading checkpoint files safely lives in checkpoints.py, timm's layer surgery in timm_adapt.py.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

# CHECKPOINT_SUFFIXES, DEFAULT_MAX_CHECKPOINT_BYTES, load_state_dict, read_checkpoint_bytes: re-exported
# for callers that still use models.<name>
from .checkpoints import (  # noqa: F401
    CHECKPOINT_SUFFIXES,
    DEFAULT_MAX_CHECKPOINT_BYTES,
    load_checkpoint_into,
    load_state_dict,
    read_checkpoint_bytes,
)
from .init import depthwise_convs
from .niff import MLP_SIZES, NIFFDepthwise
from .timm_adapt import timm_model
from .validation import whole_number

Tensor = torch.Tensor

# name -> (spec, kernel size, patch size, description); None leaves the model's own value.
MODEL_PRESETS: dict[str, tuple[str, int | None, int | None, str]] = {
    "convmixer-64/6": ("convmixer-64/6", 9, 2,
                       "Our ConvMixer, 64 channels, 6 blocks, 9x9 filters, 2x2 patches: small enough "
                       "for CPU comparisons on mnist5k or textures"),
    "convmixer-64/8": ("convmixer-64/8", 9, 2,
                       "Our ConvMixer, 64 channels, 8 blocks, 9x9 filters, 2x2 patches (14x14 maps on "
                       "mnist5k): raise k for larger filters; from 15 on they are wider than those maps"),
    "convmixer-64/8-niff": ("convmixer-64/8-niff", 15, 2,
                            "Our ConvMixer-64/8 with NIFF filters (seed 002): every depthwise filter is "
                            "as large as the feature map, the response of a small MLP over frequencies. "
                            "k is the window its filters' covariances are read in"),
    "convmixer-256/8": ("convmixer-256/8", 5, 2,
                        "Our ConvMixer-256/8 with 5x5 filters and 2x2 patches, the ConvMixer "
                        "paper's CIFAR-10 setting (GPU)"),
    "timm-convmixer-768/32": ("timm:convmixer_768_32", 7, 7,
                              "timm's ConvMixer-768/32 (ImageNet size, 21M parameters; GPU)"),
    "timm-convnext-atto": ("timm:convnext_atto", 7, 4,
                           "timm's ConvNeXt-Atto (3.7M parameters, 7x7 depthwise filters); it "
                           "downsamples 32x, so it needs images of 32 x 32 or more (textures, "
                           "CIFAR-10), not 28 x 28 digits"),
    "timm-vit-4x64": ("timm:vit_tiny_patch16_224:depth=4,embed_dim=64,num_heads=1", None, 7,
                      "timm's ViT-Tiny cut to 4 blocks of width 64 with one attention head (0.2M "
                      "parameters) on 7 × 7 patches: 16 tokens of a 28 × 28 digit. No depthwise filters: "
                      "for attention inits (mimetic), small enough for the CPU"),
    "cnn-64,64,64": ("cnn-64,64,64", 3, None,
                     "Plain 3-layer CNN, 64 channels, 3x3 filters: the Feature Ansatz setting"),
}


class Residual(nn.Module):
    """fn(x) + x."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) + x


def _convmixer_block(dim: int, kernel_size: int, niff: str | None = None) -> nn.Sequential:
    """Residual depthwise conv, k x k or NIFF with MLP_SIZES[niff] (spatial mixing), then pointwise conv
    (channel mixing)."""
    spatial = (NIFFDepthwise(dim, MLP_SIZES[niff]) if niff
               else nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"))
    return nn.Sequential(
        Residual(nn.Sequential(
            spatial,
            nn.GELU(),
            nn.BatchNorm2d(dim),
        )),
        nn.Conv2d(dim, dim, kernel_size=1),
        nn.GELU(),
        nn.BatchNorm2d(dim),
    )


def ConvMixer(dim: int, depth: int, kernel_size: int = 9, patch_size: int = 7,
              n_classes: int = 1000, in_chans: int = 3, niff: str | None = None) -> nn.Sequential:
    """ConvMixer-dim/depth with k x k depthwise filters (padding "same"), or NIFF filters (niff: "small"
    or "big", niff.MLP_SIZES), on p x p patches."""
    for value, what in ((dim, "dim"), (depth, "depth"), (kernel_size, "kernel size"),
                        (patch_size, "patch size"), (n_classes, "number of classes"),
                        (in_chans, "number of input channels")):
        whole_number(value, what, 1)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size),
                           nn.GELU(), nn.BatchNorm2d(dim)),
        blocks=nn.Sequential(*[_convmixer_block(dim, kernel_size, niff) for _ in range(depth)]),
        pool=nn.AdaptiveAvgPool2d((1, 1)),
        flatten=nn.Flatten(),
        head=nn.Linear(dim, n_classes),
    ))


def SmallCNN(in_chans: int, n_classes: int, widths=(32, 64), kernel_sizes=(5, 3)) -> nn.Sequential:
    """Plain CNN as in the Feature Ansatz experiments: blocks of Conv (no bias, zero padding k // 2)
    + ReLU + MaxPool 2x2, then global average pooling and a linear head.

    kernel_sizes: one per width, or a single int for every layer.
    """
    widths = [whole_number(w, "width", 1) for w in widths]
    if isinstance(kernel_sizes, int):
        kernel_sizes = [kernel_sizes] * len(widths)
    kernel_sizes = [whole_number(k, "kernel size", 1) for k in kernel_sizes]
    if not widths or len(kernel_sizes) != len(widths):
        raise ValueError(f"need one kernel size per layer: {len(widths)} widths, "
                         f"{len(kernel_sizes)} kernel sizes")
    whole_number(in_chans, "number of input channels", 1)
    whole_number(n_classes, "number of classes", 1)
    blocks, channels = OrderedDict(), in_chans
    for i, (width, k) in enumerate(zip(widths, kernel_sizes), start=1):
        blocks[f"block{i}"] = nn.Sequential(nn.Conv2d(channels, width, k, padding=k // 2, bias=False),
                                            nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True))
        channels = width
    return nn.Sequential(OrderedDict(
        **blocks,
        pool=nn.AdaptiveAvgPool2d((1, 1)),
        flatten=nn.Flatten(),
        head=nn.Linear(channels, n_classes),
    ))


_SPEC_HELP = ('"convmixer-<dim>/<depth>" (e.g. convmixer-64/6), "convmixer-<dim>/<depth>-niff" (or -niff-big), '
              '"cnn-<w1>,<w2>,..." or "timm:<name>" (constructor overrides: "timm:<name>:<arg>=<int>,...")')


def convmixer_spec(dim: int, depth: int, niff: str | None = None) -> str:
    """The spec parse_spec reads back as this ConvMixer: "convmixer-<dim>/<depth>", with "-niff" (niff
    "small") or "-niff-big" (niff "big")."""
    return f"convmixer-{dim}/{depth}" + {None: "", "small": "-niff", "big": "-niff-big"}[niff]


def parse_spec(spec: str) -> dict:
    """A model spec as a dict: kind ("convmixer" | "cnn" | "timm"), dim, depth, widths, name, niff
    (a ConvMixer's NIFF MLP, "small" for -niff or "big" for -niff-big; None without NIFF); a timm spec
    also has "overrides", the whole-number constructor arguments after a second colon
    ("timm:vit_tiny_patch16_224:depth=4,embed_dim=128,num_heads=2"; dim and depth read from them)."""
    text = str(spec).strip()
    if m := re.fullmatch(r"convmixer-(\d+)/(\d+)(-niff(-big)?)?", text):
        dim, depth = int(m[1]), int(m[2])
        if dim < 1 or depth < 1:
            raise ValueError(f"model {text!r}: dim and depth must be at least 1")
        niff = ("big" if m[4] else "small") if m[3] else None
        return {"kind": "convmixer", "dim": dim, "depth": depth, "widths": None, "name": text, "niff": niff}
    if m := re.fullmatch(r"cnn-(\d+(?:,\d+)*)", text):
        widths = [int(w) for w in m[1].split(",")]
        if min(widths) < 1:
            raise ValueError(f"model {text!r}: widths must be at least 1")
        return {"kind": "cnn", "dim": max(widths), "depth": len(widths), "widths": widths, "name": text,
                "niff": None}
    if m := re.fullmatch(r"timm:([\w.\-]+)(?::(\w+=\d+(?:,\w+=\d+)*))?", text):
        overrides = {key: int(value) for key, value in (item.split("=") for item in (m[2] or "").split(",") if item)}
        return {"kind": "timm", "dim": overrides.get("embed_dim"), "depth": overrides.get("depth"), "widths": None,
                "name": m[1], "niff": None, "overrides": overrides}
    raise ValueError(f"unknown model {text!r}; expected {_SPEC_HELP}")


def build_model(spec: str, *, num_classes: int, in_chans: int, kernel_size: int | None = None,
                patch_size: int | None = None, image_size: int | None = None) -> nn.Module:
    """The model a spec names, for num_classes outputs and in_chans input channels.

    convmixer: kernel_size / patch_size default to 9 / 7. cnn: kernel_size sets every layer
    (default 5 for the first layer, 3 after); it has no patches, so patch_size must be None.
    timm: the model's own sizes unless overridden (see timm_adapt.timm_model), built for image_size
    x image_size images where its constructor takes img_size (ViTs); ValueError where impossible.
    """
    parsed = parse_spec(spec)
    if kernel_size is not None:
        whole_number(kernel_size, "kernel size", 1)
    if patch_size is not None:
        whole_number(patch_size, "patch size", 1)
    if parsed["kind"] == "convmixer":
        return ConvMixer(parsed["dim"], parsed["depth"], kernel_size=kernel_size or 9,
                         patch_size=patch_size or 7, n_classes=num_classes, in_chans=in_chans,
                         niff=parsed["niff"])
    if parsed["kind"] == "cnn":
        if patch_size is not None:
            raise ValueError(f"model {spec!r} is a plain CNN without patches; leave the patch size empty")
        widths = parsed["widths"]
        kernels = kernel_size or [5] + [3] * (len(widths) - 1)
        return SmallCNN(in_chans, num_classes, widths=widths, kernel_sizes=kernels)
    return timm_model(parsed["name"], num_classes, in_chans, kernel_size, patch_size,
                      image_size=image_size, overrides=parsed["overrides"])

@torch.no_grad()
def check_input_size(model: nn.Module, in_chans: int, image_size: int, label: str,
                     dataset: str | None = None) -> None:
    """ValueError unless `model` (called `label` in the message) takes in_chans x image_size x
    image_size images: one zero image goes through it in eval mode (no statistics change; its
    training mode is restored). Models that shrink images below a kernel fail here, e.g. timm's
    ConvNeXt, which downsamples 32x, on 28 x 28 digits."""
    weight = next(model.parameters(), None)
    was_training = model.training
    try:
        model.eval()(torch.zeros(1, in_chans, image_size, image_size,
                                 device=None if weight is None else weight.device))
    except RuntimeError as err:
        reason = (str(err).strip() or type(err).__name__).splitlines()[0]
        images = f"the {image_size} × {image_size} images" + (f" of {dataset}" if dataset else "")
        raise ValueError(f"{label} does not fit {images}: {reason}. Try a dataset with larger images, "
                         "a smaller patch size or another model.") from None
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class KernelReach:
    """A depthwise layer's kh x kw filters on the n x n maps it sees."""
    layer: int  # 1-based, in depthwise_convs order
    name: str
    kernel: tuple[int, int]
    side: int

    @property
    def used(self) -> tuple[int, int]:
        """The central window of weights that ever meets an input pixel: min(k, 2n - 1) per axis.
        A 'same' conv on n x n maps pairs output i with inputs i + d, |d| <= n - 1; weights further
        out only ever meet zero padding, so their gradient is 0 and their init never matters."""
        return min(self.kernel[0], 2 * self.side - 1), min(self.kernel[1], 2 * self.side - 1)


def input_sides(model: nn.Module, layers: list[tuple[str, nn.Module]], in_chans: int, image_size: int,
                label: str = "the model", dataset: str | None = None) -> dict[str, int]:
    """Name -> side of the maps each of `layers` (name, module of `model`) sees on in_chans x
    image_size x image_size images, recorded during check_input_size's zero-image pass (whose
    ValueError it raises); layers the pass never reaches are left out."""
    sides: dict[str, int] = {}

    def record(name):
        def hook(module, args):
            sides.setdefault(name, args[0].shape[-1])
        return hook

    hooks = [module.register_forward_pre_hook(record(name)) for name, module in layers]
    try:
        check_input_size(model, in_chans, image_size, label, dataset)
    finally:
        for hook in hooks:
            hook.remove()
    return sides


def depthwise_reach(model: nn.Module, in_chans: int, image_size: int, label: str = "the model",
                    dataset: str | None = None) -> list[KernelReach]:
    """Each stride-1 'same' depthwise conv's kernel and map side on in_chans x image_size x image_size
    images (input_sides)."""
    layers = [(n, name, conv) for n, (name, conv) in enumerate(depthwise_convs(model), start=1)
              if conv.stride == (1, 1) and conv.padding in ("same", tuple(k // 2 for k in conv.kernel_size))]
    sides = input_sides(model, [(name, conv) for _, name, conv in layers], in_chans, image_size, label, dataset)
    return [KernelReach(n, name, tuple(conv.kernel_size), sides[name]) for n, name, conv in layers if name in sides]


# ---------------------------------------------------------------------------------------------
# Models rebuilt from a checkpoint: the architecture and sizes its state dict implies
# ---------------------------------------------------------------------------------------------

#: Architectures a user's checkpoint may have: label -> model spec ("convmixer" = read from file).
CHECKPOINT_ARCHITECTURES = {
    "ConvMixer (ours or timm's; sizes read from the file)": "convmixer",
    "timm ConvNeXt-Atto": "timm:convnext_atto",
    "timm ConvNeXt-Femto": "timm:convnext_femto",
    "timm ConvNeXt-Pico": "timm:convnext_pico",
    "timm ConvNeXt-Nano": "timm:convnext_nano",
    "timm ConvNeXt-Tiny": "timm:convnext_tiny",
}

_BLOCK_DW = re.compile(r"blocks\.(\d+)\.0\.fn\.0\.weight")
_BLOCK_NIFF = re.compile(r"blocks\.\d+\.0\.fn\.0\.real\.0\.weight")


def _convmixer_layout(state: dict[str, Tensor]) -> dict:
    """dim, depth, kernel and patch size, classes and input channels of a ConvMixer state dict
    (module names stem / blocks.i / head, as ours and timm's use)."""
    if any(_BLOCK_NIFF.fullmatch(key) for key in state):
        raise ValueError("this checkpoint holds a NIFF ConvMixer, whose filters depend on the size of the maps "
                         "it ran on, which a checkpoint does not record: read its covariances from its saved run")
    blocks = sorted(int(m[1]) for key in state if (m := _BLOCK_DW.fullmatch(key)))
    stem, head = state.get("stem.0.weight"), state.get("head.weight")
    if not blocks or stem is None or head is None or stem.dim() != 4 or head.dim() != 2:
        raise ValueError("this checkpoint does not have a ConvMixer's layout (stem.0, blocks.<i>.0.fn.0, "
                         "head); if it holds a timm ConvNeXt, choose that architecture")
    dw = state[f"blocks.{blocks[0]}.0.fn.0.weight"]
    return dict(spec=convmixer_spec(int(stem.shape[0]), len(blocks)), kernel_size=int(dw.shape[-1]),
                patch_size=int(stem.shape[-1]), num_classes=int(head.shape[0]), in_chans=int(stem.shape[1]))


def _timm_layout(spec: str, state: dict[str, Tensor]) -> dict:
    """Classes, input channels, kernel and patch size of a timm model's state dict (stem.0 and
    head.fc, as timm's ConvNeXt names them)."""
    stem, head = state.get("stem.0.weight"), state.get("head.fc.weight")
    # one input channel per filter; the stem has that shape too when the model reads grayscale
    depthwise = [v for key, v in state.items()
                 if key != "stem.0.weight" and v.dim() == 4 and v.shape[1] == 1 and v.shape[-1] > 1]
    if stem is None or head is None or not depthwise:
        raise ValueError(f"this checkpoint does not fit {spec} (no stem.0, head.fc or depthwise "
                         "filters found); choose the architecture it was saved from")
    return dict(spec=spec, kernel_size=int(depthwise[0].shape[-1]), patch_size=int(stem.shape[-1]),
                num_classes=int(head.shape[0]), in_chans=int(stem.shape[1]))


def model_from_state_dict(state: dict[str, Tensor], architecture: str) -> tuple[nn.Module, dict]:
    """The architecture (a value of CHECKPOINT_ARCHITECTURES) built at the checkpoint's sizes with
    its weights loaded strictly, in eval mode, and its layout: spec, kernel_size, patch_size,
    num_classes, in_chans."""
    if architecture == "convmixer":
        layout = _convmixer_layout(state)
    elif architecture in CHECKPOINT_ARCHITECTURES.values():
        layout = _timm_layout(architecture, state)
    else:
        raise ValueError(f"unknown architecture {architecture!r}")
    model = build_model(layout["spec"], num_classes=layout["num_classes"], in_chans=layout["in_chans"],
                        kernel_size=layout["kernel_size"], patch_size=layout["patch_size"])
    load_checkpoint_into(model, state)
    return model.eval(), layout
