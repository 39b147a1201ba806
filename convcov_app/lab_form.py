"""The Training Lab's setup form without streamlit: the choices its widgets offer (models, widths, batch
sizes, learning rates, init schemes), the widget values that show a setup (a preset's or the visitor's
own), the sizes a model preset brings, and the init schemes a model can start from."""

from __future__ import annotations

from convcov_core import init, models
from convcov_core.ensemble import use_ensemble

from . import lab, labels
from .lab import LabSetup

CUSTOM_MODEL = "custom ConvMixer"
MODEL_CHOICES = [name for name, (spec, *_rest) in models.MODEL_PRESETS.items()
                 if not spec.startswith("cnn-")] + [CUSTOM_MODEL]
WIDTHS = (8, 16, 32, 64, 128, 256, 512)
#: A custom ConvMixer's spatial filters -> its NIFF MLP (models.convmixer_spec; None: k x k filters).
SPATIAL_FILTERS = {"k × k convolution": None, "NIFF, small MLP (2-8-4-C)": "small",
                   "NIFF, big MLP (2-16-128-32-C)": "big"}
#: A custom ConvMixer's first width, depth and spatial filters.
CUSTOM_DEFAULTS = {"lab_width": 32, "lab_depth": 4, "lab_spatial": next(iter(SPATIAL_FILTERS))}
BATCH_SIZES = (16, 32, 64, 128, 256, 512)
LEARNING_RATES = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)
SCHEME_BY_LABEL = {labels.scheme_label(name): name for name in init.scheme_names()}


def model_choice(spec: str, kernel_size: int, patch_size) -> str:
    """The model widget's option for a spec (the preset with these sizes, else any preset of it)."""
    presets = [(name, k, p) for name, (s, k, p, _) in models.MODEL_PRESETS.items()
               if s == spec and name in MODEL_CHOICES]
    exact = [name for name, k, p in presets if (k, p) == (kernel_size, patch_size)]
    return (exact or [name for name, *_ in presets] or [CUSTOM_MODEL])[0]


def widget_values(setup: LabSetup, kernel_size: int) -> dict:
    """{widget key: value} that shows `setup` in the form; `kernel_size` is kept for a model without one."""
    t = setup.training
    values = dict(lab_dataset=t.dataset, lab_k=t.kernel_size or kernel_size, lab_patch=t.patch_size or 1,
                  lab_model=model_choice(t.model, t.kernel_size, t.patch_size),
                  lab_inits=[labels.scheme_label(name) for name in setup.inits],
                  lab_custom_sigma=setup.sigma_first is not None, lab_filters=setup.filters, lab_epochs=t.epochs,
                  lab_batch=t.batch_size, lab_lr=t.lr, lab_seeds=setup.n_seeds, lab_max_steps=t.max_steps or 0,
                  lab_precision=t.precision, lab_ensemble=use_ensemble(t, setup.ensemble))
    if values["lab_model"] == CUSTOM_MODEL:
        parsed = models.parse_spec(t.model)
        values.update(lab_width=parsed["dim"], lab_depth=parsed["depth"],
                      lab_spatial=next(label for label, niff in SPATIAL_FILTERS.items() if niff == parsed["niff"]))
    if values["lab_custom_sigma"]:
        values.update(lab_sigma_first=setup.sigma_first, lab_sigma_last=setup.sigma_last)
    return values


def preset_sizes(choice: str, kernel_size: int) -> dict | None:
    """The kernel and patch size a model preset brings ({widget key: value}); None for a custom ConvMixer."""
    if choice not in models.MODEL_PRESETS:
        return None
    _, k, p, _ = models.MODEL_PRESETS[choice]
    return dict(lab_k=k or kernel_size, lab_patch=p or 1)


def offered_schemes(k: int | None, niff: bool, sources: dict) -> list[str]:
    """Labels of lab.offered_schemes for a model with depthwise filters of size k (None: a ViT)."""
    return [labels.scheme_label(name) for name in lab.offered_schemes(k is not None, niff, bool(sources))]


# What the form says beside its widgets.
EXAMPLE_GONE = ("This preset's learned scheme takes the covariances of the bundled example network, which is no "
                "longer in the run store, so it is left out: add *Learned covariance* back and pick another "
                "source, if there is one.")
NIFF_HELP = ("NIFF (seed 002): each depthwise filter is as large as the feature map, the response of a small MLP "
             "over frequencies, applied in the FFT domain.")
NIFF_WINDOW_HELP = ("NIFF filters cover the whole map; their central k × k crop goes through the same covariance "
                    "analyses as k × k filters.")
NIFF_INIT_NOTE = ("NIFF filters come from MLPs over frequencies, which start from PyTorch's init: the filter inits "
                  "do not apply. Their trained covariances can initialize k × k ConvMixers (Learned Covariances, "
                  "*Use as init*).")
FROZEN_HELP = ("frozen at init: the filters never change, so the init alone decides what spatial structure the "
               "network can use.")
PRECISION_HELP = ("auto: bf16 autocast where the hardware has bf16 arithmetic (a GPU, or a CPU with AMX or "
                  "AVX512-BF16; the device line above says which), fp32 elsewhere. fp32 is slower; on mnist5k the "
                  "two reached the same test accuracy within seed noise (benchmarks/precision_accuracy.py).")
ENSEMBLE_HELP = ("The runs differ only in seed, init and frozen filters, so they train as one network whose layers "
                 "are grouped over them: each ends as it would alone (within float rounding). Cancel then stops "
                 "them all. On by default on a GPU; on a CPU it measured no faster.")
