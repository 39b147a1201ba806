"""Files a test uploads or loads: matrices as .npy / .pt bytes, a small ConvMixer state dict, and
malicious pickles whose unpickling would create a folder (the attack uploads must not allow)."""

import io
import os
import pickle

import numpy as np
import torch

from convcov_core import models


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class Payload:
    """Unpickling this would create a folder: the attack an upload must not allow."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def tiny_convmixer_state(dim=8, depth=3, k=5, patch=2, classes=4):
    """A seeded ConvMixer and a copy of its state dict."""
    torch.manual_seed(0)
    model = models.build_model(f"convmixer-{dim}/{depth}", num_classes=classes, in_chans=1, kernel_size=k,
                               patch_size=patch)
    return model, {n: t.detach().clone() for n, t in model.state_dict().items()}


def malicious_checkpoint(marker) -> bytes:
    """A torch.save file whose unpickling would create the folder `marker`."""
    buffer = io.BytesIO()
    torch.save({"stem.0.weight": torch.zeros(1), "payload": Payload(str(marker))}, buffer)
    return buffer.getvalue()


def write_cifar10(root, per_batch=6, per_test=5):
    """CIFAR-10's python layout: pickled dicts with uint8 "data" (N x 3072, channel-major) and
    "labels", five train batches, a test batch and batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", per_test)]:
        batch = {"batch_label": name, "labels": [int(v) for v in rng.integers(0, 10, n)],
                 "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "filenames": [f"img_{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        batches[name] = batch
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                            "ship", "truck"], "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches
