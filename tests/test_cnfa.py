"""Tests for convcov_core.model_pairs and cnfa: the small-CNN training, trained-vs-init CNFA,
eigenfilters, feature maps, and checkpoints paired with their architecture at init."""


from types import SimpleNamespace

import pytest
import torch

from convcov_core import analysis, cli, cnfa, covariance, data, frequency, model_pairs, models, train

TINY = {"n_train": 64, "n_test": 16, "image_size": 12, "bar_size": 4}


def tiny_config(**overrides) -> train.TrainConfig:
    settings = dict(noise=0.3, layers=2, width=4, kernel_size=3, epochs=1, batch_size=16,
                    dataset_params=TINY)
    settings.update(overrides)
    return model_pairs.cnn_config("noisy-bars", **settings)


@pytest.fixture(scope="module")
def tiny_pair():
    return model_pairs.train_cnn(tiny_config())


def info(channels: int = 1, mean: float = 0.5, std: float = 0.25) -> data.DatasetInfo:
    return data.DatasetInfo("test", ["a", "b"], channels, 8, [mean] * channels, [std] * channels, "test")


# ---------------------------------------------------------------------------------------------
# Training


def test_cnn_config_builds_a_plain_cnn_spec_and_passes_noise_only_to_noisy_datasets():
    config = model_pairs.cnn_config("noisy-mnist", noise=1.5, layers=3, width=16)
    assert config.model == "cnn-16,16,16" and config.patch_size is None
    assert config.dataset_params == {"noise": 1.5}
    assert model_pairs.cnn_config("mnist5k", noise=1.5).dataset_params == {}


@pytest.mark.parametrize("bad", [dict(dataset="cifar10"), dict(layers=0), dict(width=2.5),
                                 dict(kernel_size=0), dict(epochs=0)])
def test_cnn_config_refuses_bad_settings(bad):
    with pytest.raises(ValueError):
        model_pairs.cnn_config(**{"dataset": "mnist5k", **bad})


def test_train_cnn_trains_and_keeps_the_exact_initial_model(tiny_pair):
    config = tiny_config()
    _, _, _, _, dataset_info = train.load_training_data(config)
    fresh = model_pairs._initial_cnn(config, dataset_info, small_init=True)
    for (name, p0), p1, p2 in zip(fresh.named_parameters(), tiny_pair.initial.parameters(),
                                  tiny_pair.trained.parameters()):
        assert torch.equal(p0, p1), name
        assert not torch.equal(p1, p2), f"{name} did not move in training"
    steps = (TINY["n_train"] // 16) * 1
    assert tiny_pair.run.history["step"] == list(range(1, steps + 1))
    assert 0 <= tiny_pair.test_acc <= 100
    assert "small normal init" in tiny_pair.label and "noisy-bars (noise 0.3)" in tiny_pair.label


@pytest.mark.parametrize("small_init", [True, False])
def test_a_saved_cnn_run_comes_back_as_the_same_pair(tmp_path, small_init, capsys):
    """train_cnn_and_save stores the run with its weights and init; pair_from_run rebuilds the
    trained model and the exact model at init from it (the Feature Ansatz page's saved runs)."""
    from convcov_core.runs import RunStore

    store = RunStore(tmp_path / "runs.db")
    pair = model_pairs.train_cnn_and_save(tiny_config(), small_init=small_init, store=store)
    [summary] = store.list()
    assert pair.label.startswith(f"run #{summary.id}: ")
    assert (summary.name, summary.variant, summary.has_weights) == (
        model_pairs.SAVED_CNN_NAME, model_pairs.CNN_INITS[small_init], True)
    run = store.get(summary.id)
    assert set(run.history) == set(train.new_history()) and run.final["test_acc"] == pair.test_acc
    back = model_pairs.pair_from_run(run)
    for mine, theirs in ((pair.trained, back.trained), (pair.initial, back.initial)):
        for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
            assert torch.equal(a, b), name
    # the CLI lists and shows its real init, not the depthwise scheme a CNN does not have
    for command in (["runs", "list"], ["runs", "show", str(summary.id)]):
        assert cli.main([*command, "--db", str(store.path)]) == 0
        out = capsys.readouterr().out
        assert model_pairs.CNN_INITS[small_init] in out and " default " not in out.replace("pytorch-default", "")


def test_small_normal_init_sets_the_seed_scales():
    torch.manual_seed(0)
    model = model_pairs.small_normal_init_(models.SmallCNN(1, 10, widths=(64, 64), kernel_sizes=(5, 3)))
    first, second = [conv.weight for _, conv in analysis.conv_layers(model)]
    assert first.std().item() == pytest.approx(5e-3, rel=0.1)
    assert second.std().item() == pytest.approx(1e-2, rel=0.05)


def test_train_cnn_reports_progress_and_can_be_cancelled():
    events = []
    pair = model_pairs.train_cnn(tiny_config(), lambda e: events.append(e))
    assert pair is not None
    kinds = [e.kind for e in events]
    assert kinds.count("epoch") == 1 and kinds.count("step") == 4
    assert [e.step for e in events if e.kind == "step"] == [1, 2, 3, 4]
    assert all(e.total_steps == 4 for e in events)

    seen = []
    stopped = model_pairs.train_cnn(tiny_config(), lambda e: seen.append(e) or "stop")
    assert stopped is None and [e.kind for e in seen] == ["step", "done"]
    assert seen[-1].status == "cancelled"


def test_train_cnn_says_when_training_diverges():
    with pytest.raises(ValueError, match="training diverged: loss became"):
        # the largest lr and weight decay TrainConfig takes: the weights x -99 per step, NaN by step 8 of 16
        model_pairs.train_cnn(tiny_config(lr=10, epochs=4).replace(weight_decay=10, schedule="constant"))


def test_train_cnn_refuses_models_that_are_not_plain_cnns():
    with pytest.raises(ValueError, match="plain CNN"):
        model_pairs.train_cnn(tiny_config().replace(model="convmixer-8/1", patch_size=2))


def test_training_images_counts_full_batches():
    assert model_pairs.training_images(tiny_config()) == 64
    assert model_pairs.training_images(tiny_config(epochs=3)) == 3 * 64


# ---------------------------------------------------------------------------------------------
# Saved runs


@pytest.fixture(scope="module")
def tiny_run():
    config = train.TrainConfig(dataset="noisy-bars", dataset_params=TINY, model="convmixer-8/2",
                               kernel_size=5, patch_size=2, epochs=1, batch_size=16,
                               keep_state_dict=True)
    return train.train(config)


def test_pair_from_run_rebuilds_init_and_loads_trained_weights(tiny_run):
    pair = model_pairs.pair_from_run(tiny_run)
    for name, value in pair.trained.state_dict().items():
        assert torch.equal(value, tiny_run.state_dict[name]), name
    _, _, _, _, dataset_info = train.load_training_data(tiny_run.config)
    rebuilt = train.build_model_for(tiny_run.config, dataset_info).state_dict()
    for name, value in pair.initial.state_dict().items():
        assert torch.equal(value, rebuilt[name]), name
    assert not torch.equal(pair.trained.state_dict()["blocks.0.0.fn.0.weight"],
                           pair.initial.state_dict()["blocks.0.0.fn.0.weight"])


def test_pair_from_run_without_weights_says_so(tiny_run):
    weightless = train.RunResult(**{**tiny_run.__dict__, "state_dict": None, "id": 7})
    with pytest.raises(ValueError, match="run 7 saved no weights"):
        model_pairs.pair_from_run(weightless)


# ---------------------------------------------------------------------------------------------
# CNFA comparison, eigenfilters, feature maps


def test_compare_cnfa_rows_match_cnfa_report_of_each_model(tiny_pair):
    inputs = cnfa.analysis_images(tiny_pair.config, 8)
    fractions = []
    comparison = cnfa.compare_cnfa(tiny_pair, inputs, batch_size=4, progress=fractions.append)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    direct = analysis.cnfa_report(tiny_pair.initial, inputs)
    table = comparison.table()
    assert [row["layer"] for row in table] == ["block1.0", "block2.0"]
    for row, init_row in zip(table, direct):
        assert row["r at init"] == pytest.approx(init_row.r)
        assert -1 <= row["r trained"] <= 1
    assert table[1]["filters"] == "4 x 4 x 3²" and table[1]["matrix"] == 36
    with pytest.raises(ValueError, match="no layer"):
        comparison.row("head")
    assert comparison.first_spatial_layer() == "block1.0"


def test_first_spatial_layer_skips_a_patch_embedding():
    rows = [SimpleNamespace(name="stem.0", kernel_size=2), SimpleNamespace(name="pw", kernel_size=1),
            SimpleNamespace(name="dw", kernel_size=9)]
    assert cnfa.CNFAComparison(rows, rows, 4, "all").first_spatial_layer() == "dw"
    assert cnfa.CNFAComparison(rows[:2], rows[:2], 4, "all").first_spatial_layer() == "stem.0"


def test_cnfm_movement_is_one_when_training_did_not_move_the_weights(tiny_pair):
    still = model_pairs.ModelPair("same", tiny_pair.initial, tiny_pair.initial, tiny_pair.config, tiny_pair.info)
    table = cnfa.compare_cnfa(still, cnfa.analysis_images(tiny_pair.config, 4)).table()
    for row in table:
        assert row["r(CNFM init, CNFM trained)"] == pytest.approx(1.0)
        assert row["r trained"] == pytest.approx(row["r at init"])


def test_spatial_matrix_averages_the_channel_diagonal_blocks():
    blocks = [torch.randn(9, 9, dtype=torch.float64) for _ in range(2)]
    M = torch.randn(18, 18, dtype=torch.float64)
    M[:9, :9], M[9:, 9:] = blocks
    assert torch.allclose(cnfa.spatial_matrix(M, 2, 3), (blocks[0] + blocks[1]) / 2)
    assert torch.equal(cnfa.spatial_matrix(blocks[0], 1, 3), blocks[0])
    with pytest.raises(ValueError):
        cnfa.spatial_matrix(M, 3, 3)


def test_eigenfilters_recover_a_planted_edge_detector():
    edge = torch.tensor([[1.0, 1, 1], [0, 0, 0], [-1, -1, -1]], dtype=torch.float64)
    v = edge.flatten() / edge.norm()
    M = 4 * torch.outer(v, v) + 0.01 * torch.eye(9, dtype=torch.float64)
    row = analysis.CNFALayer("c", "regular", 1, 4, 3, 1, 9, 1.0, 1.0, M, M)
    shares, filters = cnfa.eigenfilters(row, "agop", 2)
    assert filters.shape == (2, 3, 3)
    assert torch.allclose(filters[0], edge / edge.norm(), atol=1e-8)
    assert shares[0] == pytest.approx(4.01 / 4.09)
    with pytest.raises(ValueError, match="agop"):
        cnfa.eigenfilters(row, "covariance")


def test_natural_images_are_square_resized_and_normalized():
    images = cnfa.natural_images(["camera", "coins"], 20, info(channels=3, mean=0.5, std=0.25))
    assert images.shape == (2, 3, 20, 20)
    assert torch.equal(images[:, 0], images[:, 2])
    pixels = cnfa.to_pixels(images[0], info(channels=3, mean=0.5, std=0.25))
    assert pixels.shape == (20, 20) and 0 <= pixels.min() and pixels.max() <= 1 + 1e-6
    with pytest.raises(ValueError, match="unknown picture"):
        cnfa.natural_images(["lena"], 20, info())


def test_layer_feature_maps_apply_m_to_each_layers_own_input():
    torch.manual_seed(0)
    model = models.SmallCNN(1, 3, widths=(2, 3), kernel_sizes=(3, 3)).double()
    image = torch.randn(1, 10, 10, dtype=torch.float64)
    matrices = {"block1.0": torch.eye(9, dtype=torch.float64), "block2.0": torch.eye(18, dtype=torch.float64)}
    maps = cnfa.layer_feature_maps(model, matrices, image)
    first = analysis.feature_map(matrices["block1.0"], image, model.block1[0])
    assert torch.allclose(maps["block1.0"], first)
    second_input = model.block1(image[None])[0]
    assert torch.allclose(maps["block2.0"], analysis.feature_map(matrices["block2.0"], second_input,
                                                                 model.block2[0]))
    assert maps["block2.0"].shape == (5, 5)
    with pytest.raises(ValueError, match="no conv layer"):
        cnfa.layer_feature_maps(model, {"head": torch.eye(3)}, image)


# ---------------------------------------------------------------------------------------------
# Frequency view


# ---------------------------------------------------------------------------------------------
# Figures (convcov_core.plots.analysis)


def test_matrix_pair_figure_tiles_one_channel_and_averages_large_matrices_down():
    from convcov_core.plots import analysis as figures

    small = figures.matrix_pair_figure(torch.eye(25), 2 * torch.eye(25), kernel_size=5, channels=1, r=1.0)
    assert [t.z.shape for t in small.data] == [(25, 25)] * 2
    assert small.data[0].z.max() == small.data[1].z.max() == 1.0  # each scaled to its own max
    assert len(small.layout.shapes) == 2 * 2 * 4  # tile lines of both panels
    assert small.layout.yaxis.showticklabels and not small.layout.yaxis2.showticklabels  # same rows
    big = figures.matrix_pair_figure(torch.eye(576), torch.eye(576), kernel_size=3, channels=64, r=1.0)
    assert [t.z.shape for t in big.data] == [(200, 200)] * 2  # area averages of 2.88 x 2.88 entries
    assert big.data[0].x[0] == pytest.approx(0.5 * 576 / 200 - 0.5) and not big.layout.shapes


def test_cnfa_bar_figure_has_trained_and_init_bars_per_layer():
    from convcov_core.plots import analysis as figures

    table = [{"layer": "a", "r trained": 0.9, "r at init": 0.5}, {"layer": "b", "r trained": -0.2,
                                                                  "r at init": float("nan")}]
    fig = figures.cnfa_bar_figure(table)
    assert [t.name for t in fig.data] == ["trained", "at initialization"]
    assert list(fig.data[0].x) == ["a", "b"] and fig.layout.yaxis.range[0] == -0.2
    with pytest.raises(ValueError):
        figures.cnfa_bar_figure([])


def _rgb_convmixer_state(seed: int = 3) -> dict:
    torch.manual_seed(seed)
    model = models.build_model("convmixer-8/2", num_classes=10, in_chans=3, kernel_size=5, patch_size=2)
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def test_a_users_checkpoint_is_paired_with_its_architecture_at_default_init():
    state = _rgb_convmixer_state()
    pair = model_pairs.pair_from_state_dict(state, "convmixer", "mine.pt", "textures")
    assert pair.label == ("mine.pt: convmixer-8/2 (k = 5), against the same architecture at PyTorch's "
                          "default init (seed 0)") and pair.test_acc is None
    assert pair.info.in_chans == 3 and pair.config.dataset_params == {"color": True}  # textures in colour
    assert all(torch.equal(v, state[k]) for k, v in pair.trained.state_dict().items())
    torch.manual_seed(model_pairs.CHECKPOINT_CONTROL_SEED)
    control = models.build_model("convmixer-8/2", num_classes=10, in_chans=3, kernel_size=5, patch_size=2)
    assert all(torch.equal(v, control.state_dict()[k]) for k, v in pair.initial.state_dict().items())
    table = cnfa.compare_cnfa(pair, cnfa.analysis_images(pair.config, 4)).table()
    assert [r["layer"] for r in table][:2] == ["stem.0", "blocks.0.0.fn.0"]
    with pytest.raises(ValueError, match="takes 3-channel images but mnist5k has 1-channel ones"):
        model_pairs.pair_from_state_dict(state, "convmixer", "mine.pt", "mnist5k")
    atto = models.build_model("timm:convnext_atto", num_classes=10, in_chans=1, kernel_size=7)
    with pytest.raises(ValueError, match=r"atto.pt: timm:convnext_atto \(k = 7\) does not fit the 28 × 28"):
        model_pairs.pair_from_state_dict(atto.state_dict(), "timm:convnext_atto", "atto.pt", "mnist5k")


def test_a_checkpoints_bytes_are_read_without_running_code(tmp_path):
    from helpers.files import malicious_checkpoint

    marker = tmp_path / "pwned"
    with pytest.raises(ValueError, match="arbitrary Python objects"):
        model_pairs.pair_from_checkpoint(malicious_checkpoint(marker), "evil.pt", "convmixer", "textures")
    assert not marker.exists()
    from safetensors.torch import save

    pair = model_pairs.pair_from_checkpoint(save(_rgb_convmixer_state()), "mine.safetensors", "convmixer", "textures")
    assert pair.label.startswith("mine.safetensors: convmixer-8/2")


def test_the_frequency_view_reads_a_checkpoint_as_it_reads_a_saved_run():
    from safetensors.torch import save

    state = _rgb_convmixer_state()
    network = frequency.filters_from_checkpoint(save(state), "mine.safetensors", "convmixer")
    assert network.layer_names == ["blocks.0.0.fn.0", "blocks.1.0.fn.0"]
    assert torch.allclose(network.covariances[1], covariance.empirical(state["blocks.1.0.fn.0.weight"]))
    trained = frequency.frequency_view("trained", run=network)
    assert trained.summary.names == network.layer_names and trained.summary.kernel_size == 5
    assert torch.equal(trained.layers[0][1], state["blocks.0.0.fn.0.weight"].double().reshape(-1, 5, 5))
    assert [f["layer"] for f in trained.fitted] == network.layer_names  # placed at their fitted sigma
    learned = frequency.frequency_view("learned", n=64, run=network)
    assert learned.summary.effective_sizes[0].shape == (64,)
    with pytest.raises(ValueError, match="needs a saved run or a checkpoint"):
        frequency.frequency_view("trained")


def test_saved_cnn_finds_the_run_trained_with_exactly_these_settings(tmp_path):
    from convcov_core.runs import RunStore

    store = RunStore(tmp_path / "runs.db")
    config = model_pairs.cnn_config("noisy-bars", layers=1, width=4, epochs=1, max_steps=2,
                           dataset_params={"n_train": 64, "n_test": 16, "image_size": 12, "bar_size": 4})
    assert model_pairs.saved_cnn(config, True, store) is None
    pair = model_pairs.train_cnn_and_save(config, small_init=True, store=store)
    run_id = store.list()[0].id
    assert pair.label.startswith(f"run #{run_id}:") and model_pairs.saved_cnn(config, True, store) == run_id
    assert model_pairs.saved_cnn(config, False, store) is None  # another init
    assert model_pairs.saved_cnn(config.replace(seed=1), True, store) is None
    assert model_pairs.saved_cnn(config.replace(epochs=2), True, store) is None
