"""Pretrained timm models: their weights loaded by timm itself, and the covariances of their filters.

Where timm looks. `timm.create_model(name, pretrained=True)` reads the model's pretrained config: for
the models listed in docs/learned.md that is a Hugging Face repository (`timm/<name>.<tag>`), read
through huggingface_hub, whose cache is $HF_HUB_CACHE (default $HF_HOME/hub, ~/.cache/huggingface/hub)
in the layout models--timm--<name>.<tag>/snapshots/<revision>/model.safetensors (or
pytorch_model.bin); with HF_HUB_OFFLINE=1 the cache alone is read, else the hub is asked first.
`pretrained_cfg_overlay=dict(file=PATH)` reads a local file instead (safetensors by its ending,
anything else with torch.load(weights_only=True)). Either way no code in the file runs.

Without network. huggingface_hub retries a hub that does not answer (5 times with backoff for
model.safetensors, then for pytorch_model.bin: about a minute). load_pretrained asks the hub once
first (one HEAD request, HUB_PROBE_S seconds at most); when it does not answer, the cache alone is
read, as HF_HUB_OFFLINE=1 would, and weights missing there are refused at once, with where to put
a weights file (weights_dir()) and how to fill the cache.

Which layers. A model's depthwise filters may come in several shapes (FastViT: 7 x 7 and 3 x 3,
InceptionNeXt: 3 x 3 squares and 1 x 11 / 11 x 1 bands). A covariance set holds one k x k shape, so
the layers kept are the square ones of the largest k; the others are named in the set's source.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from torch import nn

from . import init, learned_sets, paths
from .timm_adapt import checked_timm_name

#: timm families with pretrained weights whose kept layers (large_kernel_layers) are 7 x 7 or larger:
#: what the Learned Covariances page offers (docs/learned.md lists them, and those left out).
LARGE_KERNEL_FAMILIES = ("convmixer_*", "convnext_*", "convnextv2_*", "convformer_*", "caformer_*",
                         "mambaout_*", "rdnet_*", "starnet_*", "maxxvit*", "coatnext_*", "fastvit_*",
                         "iformer_*")


def pretrained_names() -> list[str]:
    """Every name.tag timm has pretrained weights for in LARGE_KERNEL_FAMILIES, ConvMixers first."""
    import timm

    return [name for family in LARGE_KERNEL_FAMILIES for name in timm.list_pretrained(family)]


WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def weights_dir() -> Path:
    """convcov_home()/weights: the folder whose weight files the Learned Covariances page offers."""
    return paths.convcov_home() / "weights"


def weight_files() -> list[str]:
    """Names of the weight files (WEIGHT_SUFFIXES) in weights_dir(), sorted."""
    folder = weights_dir()
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES) \
        if folder.is_dir() else []


def hub_files(name: str) -> tuple[str, tuple[str, ...]] | None:
    """(the Hugging Face repository timm reads `name`'s pretrained weights from, the file names it
    tries there), or None if it has none. A name may carry a tag (convnext_atto.d2_in1k); without
    one, timm's default tag."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(checked_timm_name(name))
    if cfg is None or not cfg.hf_hub_id:
        return None
    return cfg.hf_hub_id, (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ("model.safetensors",
                                                                               "pytorch_model.bin")


def hub_cache_folder(repository: str) -> Path:
    """Where huggingface_hub keeps `repository`'s files: $HF_HUB_CACHE/models--<owner>--<name>."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{repository.replace('/', '--')}"


#: Seconds load_pretrained waits for the hub's answer to its one probe before it reads the cache alone.
HUB_PROBE_S = 3.0


def hub_unreachable(repository: str, filename: str, timeout: float = HUB_PROBE_S) -> str | None:
    """Why the Hugging Face hub ($HF_ENDPOINT) gives no answer about `repository`'s `filename`
    within `timeout` seconds (one HEAD request through huggingface_hub's session, so its proxies and
    headers, and no retries), or None when it answers, with any HTTP status."""
    from urllib.parse import quote

    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session

    url = f"{constants.ENDPOINT.rstrip('/')}/{repository}/resolve/main/{quote(filename)}"
    try:
        get_session().head(url, headers=build_hf_headers(), timeout=timeout, follow_redirects=False)
    except Exception as err:  # any transport error: refused, no name resolution, a timeout, a proxy's
        return f"the hub ({constants.ENDPOINT}) gave no answer within {timeout:g} s ({_gist(err, 120)})"
    return None


def _missing(name: str, repository: str, files: tuple[str, ...], why: str) -> ValueError:
    from huggingface_hub import constants

    folder = hub_cache_folder(repository)
    return ValueError(
        f"no pretrained weights for timm's {name} on this machine: {why}, and the Hugging Face cache has no "
        f"{repository} {' or '.join(files)} ({folder}/snapshots/). Put the weights file in {weights_dir()} "
        f"(download {files[0]} from {constants.ENDPOINT}/{repository} where the hub is reachable and save it "
        f"as, e.g., {name}{Path(files[0]).suffix}; the Learned Covariances page lists it under Weights, the "
        f"CLI reads it with --weights FILE), or run `hf download {repository}` there and copy {folder.name} "
        f"into {folder.parent} (or set HF_HOME to a cache that has it)")


def _cached_file(repository: str, files: tuple[str, ...]) -> str | None:
    """The path of the first of `files` that the Hugging Face cache holds for `repository`, or None."""
    from huggingface_hub import try_to_load_from_cache

    found = (try_to_load_from_cache(repository, f) for f in files)
    return next((path for path in found if isinstance(path, str)), None)


def _gist(err: Exception, limit: int = 200) -> str:
    """An error's message on one line: its first line, and the next when the first only introduces
    it (torch's "Error(s) in loading state_dict for ConvNeXt:"), cut at `limit` characters."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
    text = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]
    return text if len(text) <= limit else text[:limit - 1] + "…"


def load_pretrained(name: str, weights: str | Path | None = None) -> nn.Module:
    """timm.create_model(name, pretrained=True), from the Hugging Face cache or hub, or with
    pretrained_cfg_overlay=dict(file=weights) from a local file; in eval mode, on the CPU.

    ValueError, one line, for an unknown name, a model timm has no hub weights for, weights neither in
    the cache nor reachable (naming the repository, the cache folder and weights_dir(), and how to
    fill either), a missing file, or a file that does not hold this model's weights. The hub is asked
    once (hub_unreachable); when it does not answer, or with HF_HUB_OFFLINE=1, the cache alone is
    read, and a missing cache entry is found before the model is built, so a large model costs
    nothing to refuse."""
    import timm
    from huggingface_hub import constants
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    name, hub = checked_timm_name(name), None
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ValueError(f"weights file {path} does not exist" if not path.exists()
                             else f"weights file {path} is not a file")
        overlay = {"pretrained_cfg_overlay": {"file": str(path)}}
    else:
        hub = hub_files(name)
        if hub is None:
            raise ValueError(f"timm has no Hugging Face weights for {name}; pass its weights as a file")
        overlay = {}
        if constants.HF_HUB_OFFLINE:
            if _cached_file(*hub) is None:
                raise _missing(name, *hub, "HF_HUB_OFFLINE is set, so the hub is not asked")
        elif (why := hub_unreachable(hub[0], hub[1][0])) is not None:
            cached = _cached_file(*hub)  # read as HF_HUB_OFFLINE=1 would: no retries of a silent hub
            if cached is None:
                raise _missing(name, *hub, why)
            overlay = {"pretrained_cfg_overlay": {"file": cached}}
    try:
        model = timm.create_model(name, pretrained=True, **overlay)
    except (EntryNotFoundError, HfHubHTTPError, ConnectionError) as err:
        raise _missing(name, *hub, f"the hub ({constants.ENDPOINT}) did not give them ({_gist(err, 120)})") from None
    except Exception as err:  # a malformed file trips anything in the weights-only unpickler (IndexError, ...)
        where = Path(weights).name if weights is not None else f"the cached {hub[0]} file"
        raise ValueError(f"{where} does not hold timm's {name} weights: {_gist(err)}") from None
    return model.eval()


def large_kernel_layers(model: nn.Module) -> tuple[list[tuple[str, nn.Conv2d]], Counter]:
    """(the depthwise convs with square kernels of the largest k, a count of the other depthwise
    kernel shapes left out)."""
    convs = init.depthwise_convs(model)
    square = [c.kernel_size[0] for _, c in convs if c.kernel_size[0] == c.kernel_size[1]]
    if not square:
        raise ValueError("the model has no square depthwise filters")
    k = max(square)
    kept = [(n, c) for n, c in convs if c.kernel_size == (k, k)]
    left_out = Counter(c.kernel_size for _, c in convs if c.kernel_size != (k, k))
    return kept, left_out


def learned_from_pretrained(name: str, weights: str | Path | None = None) -> learned_sets.LearnedSet:
    """The centered covariance of each large-kernel depthwise layer of timm's pretrained `name`
    (load_pretrained, large_kernel_layers)."""
    model = load_pretrained(name, weights)
    layers, left_out = large_kernel_layers(model)
    source = (f"timm {name} with the weights of {Path(weights).name}" if weights is not None
              else f"{model.pretrained_cfg.get('hf_hub_id')}, pretrained weights through timm")
    if left_out:
        shapes = ", ".join(f"{n} of {h} × {w}" for (h, w), n in sorted(left_out.items()))
        source += f" (other depthwise layers left out: {shapes})"
    return learned_sets.learned_from_layers(layers, source)
