"""Checkpoints: untrusted files, loaded without running any code they contain.

A checkpoint is read as safetensors or as a torch.save file with weights_only=True; before torch
unpickles anything, the names its pickles would import are listed from the opcodes alone
(pickletools), so a refusal can say what the file holds. The state dict is then checked (string keys,
tensor values) and copied strictly into a model with messages naming what does not fit.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

Tensor = torch.Tensor

DEFAULT_MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024

#: File endings a checkpoint upload keeps (anything else is read as ".bin": by its header).
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")

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
