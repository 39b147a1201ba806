"""Models: our ConvMixer, a plain CNN, timm models by name, and safe checkpoint loading.

ConvMixer (Trockman & Kolter, "Patches Are All You Need?"), for input x:
    stem:   z = BN(GELU(Conv_{p x p, stride p}(x)))                    patch embedding
    block:  z = BN(GELU(DepthwiseConv_{k x k}(z))) + z                  spatial mixing (the filters
            z = BN(GELU(Conv_{1 x 1}(z)))                               whose covariance we study)
    head:   Linear(mean over positions of z)
Module names follow timm's ConvMixer (stem / blocks.i / head), so its state dicts load into ours.
"""

from __future__ import annotations

import difflib
import io
import json
import pickle
import pickletools
import re
import struct
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .init import depthwise_convs

Tensor = torch.Tensor

DEFAULT_MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024

# name -> (spec, kernel size, patch size, description); None leaves the model's own value.
MODEL_PRESETS: dict[str, tuple[str, int | None, int | None, str]] = {
    "convmixer-64/6": ("convmixer-64/6", 9, 2,
                       "Our ConvMixer, 64 channels, 6 blocks, 9x9 filters, 2x2 patches: small enough "
                       "for CPU comparisons on mnist5k or textures"),
    "convmixer-64/8-k15": ("convmixer-64/8", 15, 2,
                           "Our ConvMixer with large 15x15 filters, 8 blocks: where the filter "
                           "covariance has the most structure to get right"),
    "convmixer-256/8": ("convmixer-256/8", 5, 2,
                        "Our ConvMixer-256/8 with 5x5 filters and 2x2 patches, the ConvMixer "
                        "paper's CIFAR-10 setting (GPU)"),
    "timm-convmixer-768/32": ("timm:convmixer_768_32", 7, 7,
                              "timm's ConvMixer-768/32 (ImageNet size, 21M parameters; GPU)"),
    "timm-convnext-atto": ("timm:convnext_atto", 7, 4,
                           "timm's ConvNeXt-Atto (3.7M parameters, 7x7 depthwise filters); it "
                           "downsamples 32x, so it needs images of 32 x 32 or more (textures, "
                           "CIFAR-10), not 28 x 28 digits"),
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


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _convmixer_block(dim: int, kernel_size: int) -> nn.Sequential:
    """Residual depthwise conv (spatial mixing), then pointwise conv (channel mixing)."""
    return nn.Sequential(
        Residual(nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"),
            nn.GELU(),
            nn.BatchNorm2d(dim),
        )),
        nn.Conv2d(dim, dim, kernel_size=1),
        nn.GELU(),
        nn.BatchNorm2d(dim),
    )


def ConvMixer(dim: int, depth: int, kernel_size: int = 9, patch_size: int = 7,
              n_classes: int = 1000, in_chans: int = 3) -> nn.Sequential:
    """ConvMixer-dim/depth with k x k depthwise filters (padding "same") on p x p patches."""
    for value, what in ((dim, "dim"), (depth, "depth"), (kernel_size, "kernel size"),
                        (patch_size, "patch size"), (n_classes, "number of classes"),
                        (in_chans, "number of input channels")):
        _positive_int(value, what)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size),
                           nn.GELU(), nn.BatchNorm2d(dim)),
        blocks=nn.Sequential(*[_convmixer_block(dim, kernel_size) for _ in range(depth)]),
        pool=nn.AdaptiveAvgPool2d((1, 1)),
        flatten=nn.Flatten(),
        head=nn.Linear(dim, n_classes),
    ))


def SmallCNN(in_chans: int, n_classes: int, widths=(32, 64), kernel_sizes=(5, 3)) -> nn.Sequential:
    """Plain CNN as in the Feature Ansatz experiments: blocks of Conv (no bias, zero padding k // 2)
    + ReLU + MaxPool 2x2, then global average pooling and a linear head.

    kernel_sizes: one per width, or a single int for every layer.
    """
    widths = [_positive_int(w, "width") for w in widths]
    if isinstance(kernel_sizes, int):
        kernel_sizes = [kernel_sizes] * len(widths)
    kernel_sizes = [_positive_int(k, "kernel size") for k in kernel_sizes]
    if not widths or len(kernel_sizes) != len(widths):
        raise ValueError(f"need one kernel size per layer: {len(widths)} widths, "
                         f"{len(kernel_sizes)} kernel sizes")
    _positive_int(in_chans, "number of input channels")
    _positive_int(n_classes, "number of classes")
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


_SPEC_HELP = '"convmixer-<dim>/<depth>" (e.g. convmixer-64/6), "cnn-<w1>,<w2>,..." or "timm:<name>"'


def parse_spec(spec: str) -> dict:
    """A model spec as a dict: kind ("convmixer" | "cnn" | "timm"), dim, depth, widths, name."""
    text = str(spec).strip()
    if m := re.fullmatch(r"convmixer-(\d+)/(\d+)", text):
        dim, depth = int(m[1]), int(m[2])
        if dim < 1 or depth < 1:
            raise ValueError(f"model {text!r}: dim and depth must be at least 1")
        return {"kind": "convmixer", "dim": dim, "depth": depth, "widths": None, "name": text}
    if m := re.fullmatch(r"cnn-(\d+(?:,\d+)*)", text):
        widths = [int(w) for w in m[1].split(",")]
        if min(widths) < 1:
            raise ValueError(f"model {text!r}: widths must be at least 1")
        return {"kind": "cnn", "dim": max(widths), "depth": len(widths), "widths": widths, "name": text}
    if m := re.fullmatch(r"timm:([\w.\-]+)", text):
        return {"kind": "timm", "dim": None, "depth": None, "widths": None, "name": m[1]}
    raise ValueError(f"unknown model {text!r}; expected {_SPEC_HELP}")


def build_model(spec: str, *, num_classes: int, in_chans: int, kernel_size: int | None = None,
                patch_size: int | None = None) -> nn.Module:
    """The model a spec names, for num_classes outputs and in_chans input channels.

    convmixer: kernel_size / patch_size default to 9 / 7. cnn: kernel_size sets every layer
    (default 5 for the first layer, 3 after); it has no patches, so patch_size must be None.
    timm: the model's own sizes unless overridden (see _timm_model); ValueError where impossible.
    """
    parsed = parse_spec(spec)
    if kernel_size is not None:
        _positive_int(kernel_size, "kernel size")
    if patch_size is not None:
        _positive_int(patch_size, "patch size")
    if parsed["kind"] == "convmixer":
        return ConvMixer(parsed["dim"], parsed["depth"], kernel_size=kernel_size or 9,
                         patch_size=patch_size or 7, n_classes=num_classes, in_chans=in_chans)
    if parsed["kind"] == "cnn":
        if patch_size is not None:
            raise ValueError(f"model {spec!r} is a plain CNN without patches; leave the patch size empty")
        widths = parsed["widths"]
        kernels = kernel_size or [5] + [3] * (len(widths) - 1)
        return SmallCNN(in_chans, num_classes, widths=widths, kernel_sizes=kernels)
    return _timm_model(parsed["name"], num_classes, in_chans, kernel_size, patch_size)


def _timm_model(name: str, num_classes: int, in_chans: int, kernel_size: int | None,
                patch_size: int | None) -> nn.Module:
    """timm.create_model(name, pretrained=False, ...) with optional kernel/patch size overrides.

    The override goes to timm's constructor where it takes one (ConvNeXt: kernel_sizes, patch_size).
    Where it does not (timm's registered ConvMixers fix both in their entry points), the model is
    built as is and the layers are swapped: every depthwise conv for a k x k one (same stride,
    padding "same" / k // 2), the patch-embedding conv (kernel = stride) for a p x p, stride p one.
    A model with no depthwise conv, or whose first conv is not a patch embedding, refuses the
    override with ValueError.
    """
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; similar names: {', '.join(close)}" if close else ""
        raise ValueError(f"timm has no model named {name!r}{hint}")
    base = dict(pretrained=False, num_classes=num_classes, in_chans=in_chans)
    patch = {} if patch_size is None else {"patch_size": patch_size}
    attempts = [{}] if kernel_size is None else [{"kernel_size": kernel_size}, {"kernel_sizes": kernel_size}]
    model = None
    for kernel in attempts:
        try:
            model = timm.create_model(name, **base, **kernel, **patch)
            break
        except TypeError:
            continue
    if model is None:
        model = timm.create_model(name, **base)
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


def depthwise_reach(model: nn.Module, in_chans: int, image_size: int, label: str = "the model",
                    dataset: str | None = None) -> list[KernelReach]:
    """Each stride-1 'same' depthwise conv's kernel and map side on in_chans x image_size x image_size
    images, seen during check_input_size's zero-image pass (whose ValueError it raises)."""
    layers = [(n, name, conv) for n, (name, conv) in enumerate(depthwise_convs(model), start=1)
              if conv.stride == (1, 1) and conv.padding in ("same", tuple(k // 2 for k in conv.kernel_size))]
    sides: dict[str, int] = {}

    def record(name):
        def hook(module, args):
            sides.setdefault(name, args[0].shape[-1])
        return hook

    hooks = [conv.register_forward_pre_hook(record(name)) for _, name, conv in layers]
    try:
        check_input_size(model, in_chans, image_size, label, dataset)
    finally:
        for hook in hooks:
            hook.remove()
    return [KernelReach(n, name, tuple(conv.kernel_size), sides[name]) for n, name, conv in layers if name in sides]


# ---------------------------------------------------------------------------------------------
# Checkpoints: untrusted files, loaded without running any code they contain
# ---------------------------------------------------------------------------------------------

_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_TORCH_PREFIX = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)
_LEGACY_TORCH_PICKLES = 5  # magic number, protocol version, sys info, the object, storage keys
_MAX_SAFETENSORS_HEADER = 100_000_000  # the header size limit of the safetensors library
_STATE_DICT_WRAPPERS = ("state_dict", "model", "model_state_dict")


def load_state_dict(path, *, max_bytes: int = DEFAULT_MAX_CHECKPOINT_BYTES) -> dict[str, Tensor]:
    """Parameters and buffers from a checkpoint file a user supplies, on the CPU.

    Reads safetensors (by extension or header) or a torch.save file with weights_only=True, so no
    code in the file ever runs. Accepts a bare state dict or one wrapped as {"state_dict": ...},
    {"model": ...} or {"model_state_dict": ...}. ValueError, with a distinct message, for a missing,
    empty, oversized, truncated or unrecognised file, and for one holding arbitrary Python objects.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"checkpoint {path.name} is empty (0 bytes)")
    if size > max_bytes:
        raise ValueError(f"checkpoint {path.name} is {_format_bytes(size)}, over the "
                         f"{_format_bytes(max_bytes)} limit for uploaded checkpoints")
    with path.open("rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or _looks_like_safetensors(head):
        loaded = _load_safetensors(path, size)
    elif head.startswith(_ZIP_MAGIC) or (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"):
        loaded = _load_torch(path)
    else:
        raise ValueError(f"{path.name} is not a checkpoint: expected a .safetensors file or a file "
                         "written by torch.save")
    return _as_state_dict(loaded, path.name)


def _format_bytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _looks_like_safetensors(head: bytes) -> bool:
    """safetensors layout: an 8-byte little-endian header length n, then n bytes of JSON ("{...")."""
    return len(head) >= 9 and struct.unpack("<Q", head[:8])[0] < _MAX_SAFETENSORS_HEADER and head[8:9] == b"{"


def _load_safetensors(path: Path, size: int) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as err:
        if size < _safetensors_expected_size(path):
            raise ValueError(f"checkpoint {path.name} is truncated: the safetensors header promises "
                             "more bytes than the file has") from None
        raise ValueError(f"checkpoint {path.name} is a damaged safetensors file ({err})") from None


def _safetensors_expected_size(path: Path) -> int:
    """File size the header describes (8 + header + tensor data); 0 if the header is unreadable
    (its length beyond any real header's: not read, so a wrong file cannot make us allocate it)."""
    with path.open("rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        if n > _MAX_SAFETENSORS_HEADER:
            return 0
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return 8 + n if n else 0
    if not isinstance(header, dict):
        return 8 + n
    ends = [t["data_offsets"][1] for key, t in header.items()
            if key != "__metadata__" and isinstance(t, dict) and "data_offsets" in t]
    return 8 + n + max(ends, default=0)


def _load_torch(path: Path):
    truncated = ValueError(f"checkpoint {path.name} is truncated or damaged: it ends before the data it "
                           "describes; save or copy it again")
    try:
        globals_used = _pickle_globals(path)
    except (ValueError, zipfile.BadZipFile):
        raise truncated from None
    if globals_used is None:
        raise ValueError(f"{path.name} is a zip archive but not a torch checkpoint (no data.pkl inside)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        foreign = [g for g in globals_used if not g.startswith(("torch.", "collections.OrderedDict"))]
        named = f" (it references {', '.join(foreign[:5])})" if foreign else ""
        raise ValueError(f"checkpoint {path.name} contains arbitrary Python objects{named} and was not "
                         "executed; only tensors and plain containers are loaded. Save the model's "
                         "state_dict() with torch.save or safetensors.") from None
    except (EOFError, struct.error) as err:
        raise truncated from err
    except RuntimeError as err:
        if "magic number" in str(err).lower():
            raise ValueError(f"{path.name} is a Python pickle but not a torch checkpoint") from None
        raise truncated from None


def _pickle_globals(path: Path) -> list[str] | None:
    """Module-level names ("module.attr") the checkpoint's pickles would import, found by reading
    the opcodes only (pickletools, nothing executed). ValueError when a pickle ends early; None for
    a zip archive without the data.pkl of torch.save."""
    with path.open("rb") as f:
        if f.read(4) == _ZIP_MAGIC:
            with zipfile.ZipFile(f) as archive:
                member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                if member is None:
                    return None
                return _opcode_globals(io.BytesIO(archive.read(member)), 1)
        f.seek(0)
        count = _LEGACY_TORCH_PICKLES if f.read(len(_LEGACY_TORCH_PREFIX)) == _LEGACY_TORCH_PREFIX else 1
        f.seek(0)
        return _opcode_globals(f, count)


def _opcode_globals(stream, count: int) -> list[str]:
    names = []
    for _ in range(count):
        strings = []
        for opcode, arg, _ in pickletools.genops(stream):
            if opcode.name == "GLOBAL":
                names.append(arg.replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(".".join(strings[-2:]))
            if isinstance(arg, str):
                strings.append(arg)
    return names


def _as_state_dict(loaded, filename: str) -> dict[str, Tensor]:
    if isinstance(loaded, dict):
        for key in _STATE_DICT_WRAPPERS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict):
        raise ValueError(f"{filename} does not hold a state dict (found {type(loaded).__name__}); save "
                         "model.state_dict()")
    if not loaded:
        raise ValueError(f"{filename} holds an empty state dict")
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise ValueError(f"{filename} does not hold a state dict: entry {key!r} is a "
                             f"{type(value).__name__}, not a tensor")
    return dict(loaded)


def load_checkpoint_into(model: nn.Module, state_dict: dict[str, Tensor]) -> None:
    """Copy a state dict into `model` (strict). ValueError naming the first missing, unexpected and
    shape-mismatched entries when the checkpoint is for a different architecture."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    problems = [f"{label} ({len(items)}): {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
                for label, items in (("shape mismatches", shapes), ("missing keys", missing),
                                     ("unexpected keys", unexpected)) if items]
    if problems:
        raise ValueError("checkpoint does not fit this model (different architecture?); "
                         + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)


#: Architectures a user's checkpoint may have: label -> model spec ("convmixer" = read from file).
CHECKPOINT_ARCHITECTURES = {
    "ConvMixer (ours or timm's; sizes read from the file)": "convmixer",
    "timm ConvNeXt-Atto": "timm:convnext_atto",
    "timm ConvNeXt-Femto": "timm:convnext_femto",
    "timm ConvNeXt-Pico": "timm:convnext_pico",
    "timm ConvNeXt-Nano": "timm:convnext_nano",
    "timm ConvNeXt-Tiny": "timm:convnext_tiny",
}
#: File endings a checkpoint upload keeps (anything else is read as ".bin": by its header).
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")

_BLOCK_DW = re.compile(r"blocks\.(\d+)\.0\.fn\.0\.weight")


def _convmixer_layout(state: dict[str, Tensor]) -> dict:
    """dim, depth, kernel and patch size, classes and input channels of a ConvMixer state dict
    (module names stem / blocks.i / head, as ours and timm's use)."""
    blocks = sorted(int(m[1]) for key in state if (m := _BLOCK_DW.fullmatch(key)))
    stem, head = state.get("stem.0.weight"), state.get("head.weight")
    if not blocks or stem is None or head is None or stem.dim() != 4 or head.dim() != 2:
        raise ValueError("this checkpoint does not have a ConvMixer's layout (stem.0, blocks.<i>.0.fn.0, "
                         "head); if it holds a timm ConvNeXt, choose that architecture")
    dw = state[f"blocks.{blocks[0]}.0.fn.0.weight"]
    return dict(spec=f"convmixer-{stem.shape[0]}/{len(blocks)}", kernel_size=int(dw.shape[-1]),
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


def read_checkpoint_bytes(data: bytes, filename: str, *,
                          max_bytes: int = DEFAULT_MAX_CHECKPOINT_BYTES) -> dict[str, Tensor]:
    """load_state_dict of an uploaded file's bytes (safetensors or torch weights_only: no code in
    the file runs); messages name the file as the user called it."""
    suffix = Path(filename).suffix if Path(filename).suffix in CHECKPOINT_SUFFIXES else ".bin"
    with tempfile.TemporaryDirectory(prefix="convcov-upload-") as folder:
        path = Path(folder) / f"checkpoint{suffix}"
        path.write_bytes(data)
        try:
            return load_state_dict(path, max_bytes=max_bytes)
        except ValueError as err:
            raise ValueError(str(err).replace(path.name, filename)) from None
