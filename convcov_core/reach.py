"""Whether a model takes a dataset's images, and which depthwise filters are wider than their
feature maps can use: on n x n maps a "same" convolution only ever uses the central
min(k, 2n - 1) weights of a k x k filter (models.depthwise_reach); the others meet zero padding,
get no gradient, and keep their init.
"""

from __future__ import annotations

from . import models, train
from .train.model import niff_window


def check_model_fits(config: train.TrainConfig) -> None:
    """ValueError with a plain message unless the model builds for the dataset and takes its images
    (models.check_input_size, which train() runs too): the page checks before it starts the job."""
    *_, info = train.load_training_data(config)
    model = train.build_model_for(config.replace(init="default"), info)
    models.check_input_size(model, info.in_chans, info.image_size, train.model_label(config), config.dataset)


def kernel_reach_note(config: train.TrainConfig) -> str | None:
    """None when every depthwise filter can meet the image; else which layers' maps are too small
    for their filters (models.KernelReach): only the central min(k, 2n - 1) weights ever train, so
    the init of the others makes no difference. ValueError, as check_model_fits, for a model that
    does not take the dataset's images at all."""
    *_, info = train.load_training_data(config)
    model = train.build_model_for(config.replace(init="default"), info)
    reach = models.depthwise_reach(model, info.in_chans, info.image_size, train.model_label(config), config.dataset)
    short = [r for r in reach if r.used != r.kernel]
    if not short:
        return None
    runs: list[list[models.KernelReach]] = []  # consecutive layers with the same filters and maps
    for r in short:
        last = runs[-1][-1] if runs else None
        if last is not None and (last.layer + 1, last.side, last.kernel) == (r.layer, r.side, r.kernel):
            runs[-1].append(r)
        else:
            runs.append([r])
    parts = []
    for run in runs:
        first, (kh, kw), (uh, uw) = run[0], run[0].kernel, run[0].used
        layers = f"layer {first.layer} sees" if len(run) == 1 else f"layers {first.layer}-{run[-1].layer} see"
        window = "the centre weight" if uh * uw == 1 else f"the central {uh} × {uw} weights"
        parts.append(f"{layers} {first.side} × {first.side} maps and use{'s' if len(run) == 1 else ''} only "
                     f"{window} of {kh} × {kw} filters")
    return (f"{len(short)} of {len(reach)} depthwise layers have filters wider than their feature maps "
            f"can use on the {info.image_size} × {info.image_size} images of {config.dataset}: "
            + "; ".join(parts) + ". The other weights only ever meet zero padding: they get no gradient "
            "and their init makes no difference. A smaller kernel or patch size, or larger images, avoids it.")


def niff_crop_note(run: train.RunResult) -> str | None:
    """For a NIFF run (final["niff_energy_outside"]): that its covariances are of filters cropped to k x k
    from filters as large as the maps, and how much energy the crop leaves out; None for other runs."""
    outside = run.final.get("niff_energy_outside")
    if not outside:
        return None
    k = niff_window(run.config)
    start = (f"This run's NIFF filters are as large as its feature maps; their covariances are read in the central "
             f"{k} × {k} window, which ")
    if not any(outside):
        return start + "holds the whole map: none of their energy is left out."
    shares = ", ".join(f"{100 * share:.1f}" for share in outside)
    return start + f"leaves out this share of their energy per layer: {shares} %."


def run_reach_warning(run: train.RunResult) -> str | None:
    """What kernel_reach_note means for a saved run's filters (for a NIFF run, niff_crop_note); None when
    every weight could train, or when the run's data is not here to tell."""
    if (note := niff_crop_note(run)) is not None:
        return note
    try:
        note = kernel_reach_note(run.config)
    except (ValueError, OSError):
        return None
    return None if note is None else (f"This run's setup: {note} Outside that central window its filters, "
                                      "and their covariances, are the init, not what training learned.")
