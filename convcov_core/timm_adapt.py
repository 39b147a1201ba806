"""timm models by name, with kernel and patch size overrides (by constructor argument or layer surgery)."""

from __future__ import annotations

import difflib

from torch import nn

from .init import depthwise_convs


def checked_timm_name(name: str) -> str:
    """The name, stripped, if timm registers it (a pretrained tag may follow: convnext_atto.d2_in1k);
    else ValueError with the closest registered names."""
    import timm

    name = str(name).strip()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; similar names: {', '.join(close)}" if close else ""
        raise ValueError(f"timm has no model named {name!r}{hint}")
    return name


def timm_model(name: str, num_classes: int, in_chans: int, kernel_size: int | None,
                patch_size: int | None, *, image_size: int | None = None, overrides: dict | None = None) -> nn.Module:
    """timm.create_model(name, pretrained=False, ...) with optional kernel/patch size overrides.

    The override goes to timm's constructor where it takes one (ConvNeXt: kernel_sizes, patch_size).
    Where it does not (timm's registered ConvMixers fix both in their entry points), the model is
    built as is and the layers are swapped: every depthwise conv for a k x k one (same stride,
    padding "same" / k // 2), the patch-embedding conv (kernel = stride) for a p x p, stride p one.
    A model with no depthwise conv, or whose first conv is not a patch embedding, refuses the
    override with ValueError. image_size goes to constructors that take img_size (ViTs, whose
    position embedding is sized for it); `overrides` (e.g. depth, embed_dim, num_heads) go to the
    constructor as they are, and one it does not take is refused with ValueError.
    """
    import timm

    checked_timm_name(name)
    base = dict(pretrained=False, num_classes=num_classes, in_chans=in_chans, **(overrides or {}))
    patch = {} if patch_size is None else {"patch_size": patch_size}
    kernels = [{}] if kernel_size is None else [{"kernel_size": kernel_size}, {"kernel_sizes": kernel_size}]
    sizes = [{}] if image_size is None else [{"img_size": image_size}, {}]
    attempts = [{**kernel, **size} for kernel in kernels for size in sizes]
    model = None
    for kernel in attempts:
        try:
            model = timm.create_model(name, **base, **kernel, **patch)
            break
        except TypeError:
            continue
    if model is None:
        try:
            model = timm.create_model(name, **base)
        except TypeError as err:
            raise ValueError(f"timm model {name!r} does not take the overrides {overrides}: {err}") from None
    if kernel_size is not None:
        _set_depthwise_kernels(model, name, kernel_size)
    if patch_size is not None:
        _set_patch_embedding(model, name, patch_size)
    return model


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _set_depthwise_kernels(model: nn.Module, model_name: str, k: int) -> None:
    convs = depthwise_convs(model)
    if not convs:
        raise ValueError(f"timm model {model_name!r} has no depthwise convolutions, so its kernel size "
                         "cannot be set; leave the kernel size empty")
    bands = sorted({conv.kernel_size for _, conv in convs if conv.kernel_size[0] != conv.kernel_size[1]})
    if bands:
        shapes = ", ".join(f"{h} x {w}" for h, w in bands)
        raise ValueError(f"timm model {model_name!r} has band depthwise filters ({shapes}) that a k x k "
                         "kernel would replace; leave the kernel size empty to keep its own")
    for name, conv in convs:
        if conv.kernel_size == (k, k):
            continue
        padding = "same" if conv.stride == (1, 1) else k // 2
        _replace(model, name, nn.Conv2d(conv.in_channels, conv.out_channels, k, stride=conv.stride,
                                        padding=padding, dilation=conv.dilation, groups=conv.groups,
                                        bias=conv.bias is not None))


def _set_patch_embedding(model: nn.Module, model_name: str, p: int) -> None:
    first = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    try:
        conv = model.get_submodule(first)
    except (AttributeError, TypeError):
        conv = None
    if not isinstance(conv, nn.Conv2d) or conv.kernel_size != conv.stride:
        raise ValueError(f"timm model {model_name!r} does not start with a patch embedding, so its patch "
                         "size cannot be set; leave the patch size empty")
    if conv.kernel_size != (p, p):
        _replace(model, first, nn.Conv2d(conv.in_channels, conv.out_channels, p, stride=p,
                                         bias=conv.bias is not None))

