"""A stored run as files: JSON (config, metrics, history, covariances per layer) and its history as CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .json_safe import json_safe
from .train import RunResult


def run_document(run: RunResult) -> dict:
    """Everything export writes about a run, as plain data (covariances as nested lists by layer)."""
    return {
        "id": run.id, "variant": run.variant, "status": run.status, "message": run.message,
        "device": run.device, "wall_time": run.wall_time, "config": run.config.to_dict(),
        "final": run.final, "history": run.history, "layer_names": run.layer_names,
        "covariances": {name: S.tolist() for name, S in zip(run.layer_names, run.covariances)},
    }


def export_run(run: RunResult, path: str | Path) -> tuple[Path, Path]:
    """Write the run as strict JSON (NaN and infinities as null) at `path` and its history as CSV
    next to it (same name, .csv); return both paths."""
    json_path = Path(path)
    csv_path = json_path.with_suffix(".csv")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(json_safe(run_document(run)), allow_nan=False))
    write_history_csv(run.history, csv_path)
    return json_path, csv_path


def write_history_csv(history: dict, path: Path) -> None:
    """One row per step (step, epoch, loss, lr); the per-epoch metrics sit on the epoch's last step."""
    per_epoch = {s: i for i, s in enumerate(history.get("epoch_end_step", []))}
    epoch_keys = ("train_acc", "test_acc", "images_per_s")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("step", "epoch", "loss", "lr") + epoch_keys)
        for i, step in enumerate(history["step"]):
            e = per_epoch.get(step)
            writer.writerow([step, history["epoch"][i], history["loss"][i], history["lr"][i]]
                            + ["" if e is None else history[key][e] for key in epoch_keys])
