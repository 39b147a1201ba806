"""Test accuracy during and after a run.

Test accuracy is measured with BatchNorm statistics recomputed on training images after the
epoch's last step (batchnorm.py: "precise BN"); the eval-mode accuracy with the statistics that
training left is kept beside it as test_acc_raw. Accuracies are in percent (0-100).
"""

from __future__ import annotations

import torch

from .. import batchnorm
from ..step import autocast
from .inputs import _as_nchw, gather_images

Tensor = torch.Tensor


@torch.inference_mode()
def count_correct(model: torch.nn.Module, batches, device: torch.device, dtype: torch.dtype | None) -> Tensor:
    """Correct predictions of `model` (eval mode, no grad, autocast to dtype unless None) summed over
    `batches` of (images, labels): sum (argmax(model(x), -1) == y), a 0-d tensor for B x K scores of
    B labels, one count per network for B x N x K scores of B x N labels (ensemble.py)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with autocast(device, dtype):
        for x, y in batches:
            correct = correct + (model(x).argmax(-1) == y).sum(0)
    model.train(was_training)
    return correct


def evaluate(model: torch.nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 512,
             dtype: torch.dtype | None = None) -> float:
    """Accuracy in percent of `model` (eval mode, no grad, autocast to dtype unless None) on images
    x (N x C x H x W, any layout)."""
    batches = ((x[start:start + batch_size], y[start:start + batch_size]) for start in range(0, len(y), batch_size))
    return 100.0 * int(count_correct(model, batches, y.device, dtype)) / max(len(y), 1)


def test_batch_size(batch: int) -> int:
    """Images per evaluation batch of a run that trains on batches of `batch`."""
    return max(256, 2 * batch)


def evaluate_epoch(model, xs, xt, yt, batch: int, channels_last: bool, dtype, *, seed: int,
                    keep: bool) -> tuple[float, float]:
    """(raw, settled) test accuracy at the end of an epoch: raw with the BatchNorm running
    statistics as training left them, settled after batchnorm.recalibrate_bn_ on training images
    (the same number for a model without BatchNorm). keep: leave the recalibrated statistics in
    the model (the last epoch: the network a run hands back); otherwise put the old ones back, so
    the rest of training does not depend on how it was evaluated."""
    def test_accuracy() -> float:
        return evaluate(model, _as_nchw(xt, channels_last), yt, batch_size=test_batch_size(batch), dtype=dtype)

    batches = batchnorm.training_batches(xs, batch, seed=seed,
                                         as_batch=lambda x, idx: gather_images(x, idx, channels_last))
    return raw_and_settled(model, test_accuracy, batches, dtype, keep=keep)


def raw_and_settled(model: torch.nn.Module, test_accuracy, batches, dtype, *, keep: bool):
    """(raw, settled): test_accuracy() before and after batchnorm.recalibrate_bn_(model, batches);
    raw twice for a model without BatchNorm; see evaluate_epoch for keep."""
    raw = test_accuracy()
    if not batchnorm.batchnorms(model):
        return raw, raw
    saved = None if keep else batchnorm.bn_state(model)
    batchnorm.recalibrate_bn_(model, batches, dtype=dtype)
    settled = test_accuracy()
    if saved is not None:
        batchnorm.load_bn_state_(model, saved)
    return raw, settled
