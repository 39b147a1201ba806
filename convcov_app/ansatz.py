"""The Feature Ansatz page's presenter: what its widgets offer, what it says about the model it analyses, and
the captions of the CNFA table, a layer's matrices, their eigenvectors and the feature maps. No streamlit
here."""

from __future__ import annotations

from convcov_core import model_pairs

KERNELS = {"5 × 5, then 3 × 3": None, "3 × 3": 3, "5 × 5": 5, "7 × 7": 7}
CNN, SAVED, UPLOAD = SOURCES = ("A small CNN trained here", "A saved run (weights needed)", "An uploaded checkpoint")
SMALL_INIT, DEFAULT_INIT = INITS = ("small normal (as in the paper)", "PyTorch default")
WIDTHS = (8, 16, 32, 64)
IMAGE_COUNTS = (16, 32, 64, 128, 256, 512)
ALL_OUTPUTS, PREDICTED = OUTPUTS = ("all outputs", "the predicted class")
NATURAL_SIZE = 112  # pixels: natural pictures are shown larger than the 28 x 28 training images
MEMO_SIZE = 4  # comparisons kept per session or server

INIT_HELP = ("Small normal: conv weights N(0, 0.005²) in the first layer and N(0, 0.01²) after, as in the Feature "
             "Ansatz paper, so the trained filters are learned rather than left over from the init.")
UPLOAD_NEEDED = ("Upload a checkpoint in the sidebar: a .safetensors file or a torch.save file of a ConvMixer's or "
                 "a timm ConvNeXt's state dict. Its layers are compared with the same architecture at PyTorch's "
                 "default init (seed 0; the file does not say how it was initialized).")
EXAMPLE_SHOWN = ("Until you train the small CNN (**Train**), this is the analysis of the bundled example network, "
                 "the trained ConvMixer the other pages open on.")
MAPS_CAPTION = ("Each map scaled to its own maximum: bright where M responds strongly to the patch the layer "
                "reads there. Edge detectors trace the strokes of digits and the outlines of objects; eigenvectors "
                "that do not sum to zero also respond to plain brightness (the sky of the camera picture). On the "
                "noisy datasets a trained model dims the background noise and keeps the signal.")


def gradients_of(outputs: str) -> str:
    """The outputs widget's choice as cnfa.compare_cnfa's `outputs`."""
    return "all" if outputs == ALL_OUTPUTS else "predicted"


def training_caption(config, init_choice: str, epochs: int) -> str:
    """Beside Train: what it trains, and where the trained model goes."""
    return (f"{model_pairs.describe_model(config)}, {init_choice} init, on {model_pairs.describe_dataset(config)}, "
            f"{epochs} epoch(s): conv + ReLU + 2 × 2 max pooling blocks, AdamW. Change it in the sidebar. Training "
            "runs in the background, its progress bar shows the pace measured here; the trained model is saved: "
            "find it later under *A saved run*.")


def model_line(pair: model_pairs.ModelPair) -> str:
    accuracy = f", test accuracy {pair.test_acc:.1f}%" if pair.test_acc is not None else ""
    return f"**Model:** {pair.label}{accuracy}."


def table_caption(n_images: int) -> str:
    return (f"Pearson r over all entries of the two matrices, AGOP from {n_images} test images. Read the columns "
            "together: a high r at init is expected (M = WᵀGW with nearly isotropic output gradients G is close "
            "to a multiple of WᵀW), so the evidence for the ansatz is r staying high after training although "
            "training moved the CNFM far from its init (a low last column).")


def matrices_caption(channels: int) -> str:
    return ("Each matrix divided by its largest |entry|; the ansatz predicts the same pattern in both. "
            + ("Tile (i, j) shows how patch pixel (i, j) pairs with every pixel of the patch." if channels == 1
               else "Entries run over (channel, row, column) of the patch."))


def eigenfilters_caption(channels: int, small_cnn: bool) -> str:
    """Under the eigenvectors; `small_cnn`: the page's own CNN is shown (not the bundled example)."""
    return ("Titles give each eigenvalue's share of the trace. Edge detectors (light and dark bands) are what the "
            "ansatz predicts for first layers, noise at initialization."
            + (" With the small init on digits the first layer shows them after two epochs; PyTorch's default "
               "init keeps much of its random start in a short run." if small_cnn else "")
            + (" For a layer with several input channels these are the eigenvectors of the channel average of "
               "its k × k diagonal blocks." if channels > 1 else ""))
