"""Precise BN: test accuracy with BatchNorm statistics recomputed on training images."""

import copy

import pytest
import torch
from torch import nn

from convcov_core import batchnorm, models, train
from convcov_core.train.evaluation import evaluate_epoch


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.LazyLinear(3), nn.BatchNorm1d(3))


def test_recalibration_is_the_cumulative_average_of_batch_statistics():
    model = _net()
    x = torch.randn(64, 1, 8, 8) * 3 + 1
    model(x)  # materialize the lazy layer; the statistics now hold one momentum step
    batches = list(batchnorm.training_batches(x, 16, n_images=64))
    assert len(batches) == 4 and all(len(b) == 16 for b in batches)
    model.eval()
    assert batchnorm.recalibrate_bn_(model, batches) == 4
    assert not model.training  # mode restored
    conv, bn = model[0], model[1]
    with torch.no_grad():
        outs = [conv(b) for b in batches]
    means = torch.stack([o.mean((0, 2, 3)) for o in outs])
    variances = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outs])
    torch.testing.assert_close(bn.running_mean, means.mean(0))
    torch.testing.assert_close(bn.running_var, variances.mean(0))
    assert bn.momentum == 0.1  # put back


def test_state_round_trip_and_models_without_batchnorm():
    model = _net()
    model(torch.randn(8, 1, 8, 8))
    saved = batchnorm.bn_state(model)
    batchnorm.recalibrate_bn_(model, [torch.randn(8, 1, 8, 8) + 5])
    batchnorm.load_bn_state_(model, saved)
    for (mean, var, count), bn in zip(saved, batchnorm.batchnorms(model)):
        assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
    plain = models.SmallCNN(1, 10)
    assert batchnorm.recalibrate_bn_(plain, [torch.randn(2, 1, 8, 8)]) == 0
    with pytest.raises(ValueError, match="at least one batch"):
        batchnorm.recalibrate_bn_(_net(), [])


def test_a_frozen_filter_run_near_chance_in_raw_eval_mode_gets_its_real_accuracy():
    """The audit's case: ConvMixer-64/8, k = 15, depthwise filters frozen at PyTorch's default init,
    one epoch on mnist5k. Its training loss says it learned; with the BatchNorm statistics training
    left it is near chance in eval mode; with recomputed statistics it is where its training
    accuracy says it is."""
    config = train.TrainConfig(model="convmixer-64/8", kernel_size=15, patch_size=2, epochs=1,
                               init="default", freeze_filters=True, seed=0, keep_state_dict=True)
    run = train.train(config)
    final = run.final
    assert final["loss"] < 0.8  # it learned (chance is ln 10 = 2.3)
    assert final["test_acc_raw"] < 25
    assert final["test_acc"] > 75 and final["test_acc"] >= final["train_acc"]
    assert run.history["test_acc"] == [final["test_acc"]] and run.history["test_acc_raw"] == [final["test_acc_raw"]]
    # the weights handed back carry the recomputed statistics: evaluating them again gives the same number
    train_x, train_y, test_x, test_y, info = train.load_training_data(config)
    model = train.build_model_for(config, info)
    models.load_checkpoint_into(model, run.state_dict)
    assert train.evaluate(model, test_x, test_y, dtype=None) == pytest.approx(final["test_acc"], abs=1.0)


def test_evaluating_an_earlier_epoch_leaves_training_as_it_was():
    """Epochs before the last are evaluated both ways and the statistics are put back, so the
    second epoch trains exactly as it would without the evaluation."""
    config = train.TrainConfig(model="convmixer-8/2", kernel_size=5, epochs=2, max_steps=4, batch_size=16,
                               dataset_params={"n_train": 32}, dataset="noisy-bars", precision="fp32",
                               threads=1)
    _, _, _, _, info = train.load_training_data(config)
    model = train.build_model_for(config, info)
    before = copy.deepcopy(batchnorm.bn_state(model))
    xs, _, xt, yt, _ = train.load_training_data(config)
    raw, settled = evaluate_epoch(model, xs, xt, yt, 16, False, None, seed=0, keep=False)
    after = batchnorm.bn_state(model)
    assert all(torch.equal(a, b) for pa, pb in zip(before, after) for a, b in zip(pa, pb))
    evaluate_epoch(model, xs, xt, yt, 16, False, None, seed=0, keep=True)
    assert not all(torch.equal(a, b) for pa, pb in zip(before, batchnorm.bn_state(model)) for a, b in zip(pa, pb))
    run = train.train(config)
    assert len(run.history["test_acc"]) == len(run.history["test_acc_raw"]) == 2
