"""The bundled example network: a ConvMixer trained on the embedded MNIST digits, shipped with the
package so that every page reading trained filters has one to show on a fresh install.

The file holds the run's state dict (safetensors) and, in its metadata, the rest of its RunResult
(config, history, final metrics, device, wall time); covariances are recomputed from the weights on
load, exactly as train() computes them. The app adds it to the run store once (`add_to_store`);
a visitor who deletes it does not get it back. Rebuild it with `python -m convcov_core.examples`.
"""

from __future__ import annotations

import json
from pathlib import Path

import safetensors
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from . import covariance, train
from .runs import RunStore

EXAMPLE_PATH = Path(__file__).with_name("bundled") / "example_convmixer.safetensors"
EXAMPLE_NAME = "example"
EXAMPLE_CONFIG = train.TrainConfig(dataset="mnist5k", model="convmixer-64/8", kernel_size=9, patch_size=2,
                                   init="default", epochs=15, seed=0, keep_state_dict=True)
_RUN_KEY = "convcov_run"


def save_example(run: train.RunResult, path: str | Path = EXAMPLE_PATH) -> Path:
    """Write a finished run (weights kept) as an example file: state dict + run metadata."""
    if run.status != "ok" or not run.state_dict:
        raise ValueError("an example needs a run that finished and kept its weights")
    meta = {"config": dict(run.config.to_dict(), precision=run.precision), "history": run.history,
            "final": run.final, "status": run.status, "message": run.message,
            "wall_time": run.wall_time, "device": run.device, "layer_names": run.layer_names}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(run.state_dict, str(path), metadata={_RUN_KEY: json.dumps(meta)})
    return path


def load_example(path: str | Path = EXAMPLE_PATH) -> train.RunResult:
    """The example run with its weights and its per-layer covariances (centered, from the weights);
    a missing or damaged file is a ValueError that says how to rebuild it."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[_RUN_KEY])
        state = load_file(str(path))
    except (OSError, KeyError, ValueError, safetensors.SafetensorError) as err:
        raise ValueError(f"the bundled example {path} is missing or damaged ({err}); reinstall convcov "
                         "or rebuild it with `python -m convcov_core.examples`") from None
    config = train.TrainConfig.from_dict(meta["config"])
    names = meta["layer_names"]
    covariances = [covariance.empirical(state[f"{name}.weight"].float(), centered=True) for name in names]
    return train.RunResult(config=config, history=meta["history"], final=meta["final"],
                           status=meta["status"], message=meta["message"], wall_time=meta["wall_time"],
                           device=meta["device"], layer_names=names, covariances=covariances,
                           state_dict=state, precision=config.precision)


def add_to_store(store: RunStore, path: str | Path = EXAMPLE_PATH) -> int | None:
    """Store the example once per run store; the new run's id, or None when it was added before
    (even if it has been deleted since)."""
    return store.save_once(EXAMPLE_NAME, lambda: load_example(path), name=EXAMPLE_NAME)


def stored_id(store: RunStore) -> int | None:
    """The example's run id in `store`, or None when it was never added or has been deleted."""
    return store.once_id(EXAMPLE_NAME)


def build(path: str | Path = EXAMPLE_PATH, callback=None) -> train.RunResult:
    """Train EXAMPLE_CONFIG and save it to `path` (about 3 minutes on 2 CPU cores)."""
    run = train.train(EXAMPLE_CONFIG, callback=callback)
    save_example(run, path)
    return run


if __name__ == "__main__":
    result = build()
    print(f"{EXAMPLE_PATH}: {result.message}, {result.wall_time:.0f} s on {result.device}")
