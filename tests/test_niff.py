"""NIFF (seed 002): the layer against an explicit circular convolution, its crop and the energy
outside it, a NIFF-ConvMixer trained by the engine, its covariances stored, analysed and shown."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convcov_app import background, lab, labels
from convcov_core import covariance, frequency, init, learned_sets, models, reach, train
from convcov_core.niff import MLP_SIZES, NIFFDepthwise, centre_window, energy_outside, frequency_grid, niff_layers
from helpers.pages import assert_clean, new_app, poll_until_finished, run_page

LAB = "convcov_app/pages/3_Training_Lab.py"
TINY = {"n_train": 64, "n_test": 16, "image_size": 12, "bar_size": 4}  # 6 x 6 maps with 2 x 2 patches
TINY_NIFF = train.TrainConfig(dataset="noisy-bars", dataset_params=TINY, model="convmixer-8/2-niff",
                              kernel_size=5, patch_size=2, epochs=1, batch_size=16, max_steps=3)


def circular_conv(x, filters):
    """sum_{a, b} w[c, a, b] x[c, (i + a - H // 2) mod H, (j + b - W // 2) mod W], term by term."""
    height, width = filters.shape[-2:]
    return sum(filters[:, a, b, None, None] * torch.roll(x, (height // 2 - a, width // 2 - b), dims=(-2, -1))
               for a in range(height) for b in range(width))


@pytest.mark.parametrize("height, width", [(6, 6), (7, 7), (5, 8)])
def test_forward_is_the_circular_convolution_with_its_spatial_filters(height, width):
    torch.manual_seed(0)
    layer = NIFFDepthwise(3)
    x = torch.randn(2, 3, height, width)
    filters = layer.spatial_filters(height, width)
    assert filters.shape == (3, height, width) and filters.dtype == torch.float32
    expected = circular_conv(x, filters)
    assert torch.allclose(layer(x), expected, atol=1e-5)
    # the same as nn.Conv2d's reading of the filters as weights, with circular padding
    padded = F.pad(x, (width // 2, width - 1 - width // 2, height // 2, height - 1 - height // 2), mode="circular")
    assert torch.allclose(F.conv2d(padded, filters[:, None], groups=3), expected, atol=1e-5)


def test_forward_keeps_the_dtype_under_bf16_autocast():
    layer = NIFFDepthwise(4)
    x = torch.randn(2, 4, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x.bfloat16())
    assert y.dtype == torch.bfloat16
    assert torch.allclose(y.float(), layer(x.bfloat16().float()), atol=0.05)


def test_a_double_layer_runs_forward_and_backward_in_float64():
    """After .double() the grid, the response and the FFTs are float64: the output matches the float64
    circular convolution to 1e-12 (float32 anywhere would leave errors near 1e-7)."""
    torch.manual_seed(0)
    layer = NIFFDepthwise(4).double()
    x = torch.randn(2, 4, 6, 7, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    assert y.dtype == torch.float64 and layer.frequency_response(6, 7).dtype == torch.complex128
    assert torch.allclose(y, circular_conv(x, layer.spatial_filters(6, 7)), atol=1e-12)
    y.square().sum().backward()
    assert x.grad.dtype == torch.float64
    assert all(p.grad is not None and p.grad.dtype == torch.float64 for p in layer.parameters())


# A transcription of the reference (GeJulia/NIFF, niff_small.py: MLP_small and FreqConv_DW_fftifft's
# forward), kept to its lines; changed: on the CPU (`.to(self.device)` and `weights.cuda()` dropped)
# and the mask built at every call rather than cached on the module.
class MLP_small(nn.Module):
    def __init__(self, planes):
        super().__init__()
        self.layer_mpl1 = nn.Conv2d(2, 8, 1, padding=0, groups=1)
        self.layer_mpl2 = nn.Conv2d(8, 4, 1, padding=0, groups=1)
        self.layer_mpl3 = nn.Conv2d(4, planes, 1, padding=0, groups=1)

    def forward(self, x):
        x = self.layer_mpl1(x.unsqueeze(0))
        x = F.silu(x)
        x = self.layer_mpl2(x)
        x = F.silu(x)
        x = self.layer_mpl3(x)
        return x


def reference_forward(mlp_real, mlp_imag, x):
    mask = torch.cat([
        torch.arange(-(x.size(2)/2), (x.size(2)/2), requires_grad=True)[None, :].repeat(x.size(3), 1).unsqueeze(0),
        torch.arange(-(x.size(3)/2), (x.size(3)/2), requires_grad=True)[:, None].repeat(1, x.size(2)).unsqueeze(0)],
        dim=0)
    x = torch.fft.fftshift(torch.fft.fft2(x))
    weights = torch.complex(mlp_real(mask), mlp_imag(mask))
    x = weights*x
    return torch.fft.ifft2(torch.fft.ifftshift(x)).real


@torch.no_grad()
def as_reference_mlp(mlp: nn.Sequential) -> MLP_small:
    """Our small MLP's weights as the reference's 1 x 1 convs: the two inputs swapped (its first is the
    column frequency v, ours the row frequency u), the outputs rolled by C // 2 (fftshift over the
    channels: its fftshift(fft2(x)) shifts the channel axis too, so its channel c + C // 2 filters x[c])."""
    first, middle, last = (m for m in mlp if isinstance(m, nn.Linear))
    reference = MLP_small(last.out_features)
    for conv, weight, bias in ((reference.layer_mpl1, first.weight[:, [1, 0]], first.bias),
                               (reference.layer_mpl2, middle.weight, middle.bias),
                               (reference.layer_mpl3, torch.fft.fftshift(last.weight, dim=0),
                                torch.fft.fftshift(last.bias))):
        conv.weight.copy_(weight[:, :, None, None])
        conv.bias.copy_(bias)
    return reference


@pytest.mark.parametrize("size, coordinates, same", [(6, "integer", True), (8, "half", True), (7, "half", True),
                                                      (7, "integer", False)])
def test_the_layer_is_the_seeds_with_its_weights_mapped(size, coordinates, same):
    """On even maps either convention is the seed code's layer; on odd ones only "half" (the seed's
    arange(-H/2, H/2): half-integer coordinates) is, the default integer frequencies are not."""
    torch.manual_seed(0)
    layer = NIFFDepthwise(5, coordinates=coordinates)  # C = 5: the channel roll is not its own inverse
    x = torch.randn(3, 5, size, size)
    expected = reference_forward(as_reference_mlp(layer.real), as_reference_mlp(layer.imag), x)
    assert torch.allclose(layer(x), expected, atol=1e-5) == same


def test_half_coordinates_are_the_integer_ones_on_even_axes_and_shifted_by_a_half_on_odd_ones():
    integer, half = frequency_grid(6, 7), frequency_grid(6, 7, "half")
    assert torch.equal(half[..., 0], integer[..., 0])
    assert torch.equal(half[..., 1], integer[..., 1] - 0.5)
    assert sorted(half[0, :, 1].tolist()) == torch.arange(-3.5, 3.5).tolist()
    with pytest.raises(ValueError, match="coordinates must be one of integer, half"):
        NIFFDepthwise(4, coordinates="centred")


def mlp_shapes(layer):
    return [tuple(m.weight.shape[:2]) for m in layer.real if hasattr(m, "weight")]


def test_layer_has_the_seeds_mlp_shapes():
    layer = NIFFDepthwise(16)
    assert mlp_shapes(layer) == [(8, 2), (4, 8), (16, 4)]
    assert sum(p.numel() for p in layer.parameters()) == 2 * (2 * 8 + 8 + 8 * 4 + 4 + 4 * 16 + 16)
    assert mlp_shapes(NIFFDepthwise(16, MLP_SIZES["big"])) == [(16, 2), (128, 16), (32, 128), (16, 32)]
    with pytest.raises(ValueError, match="channels must be a whole number"):
        NIFFDepthwise(0)


@pytest.mark.parametrize("size, rank", [("small", 2 * 4 + 1), ("big", 2 * 32 + 1)])
def test_a_layers_filters_span_at_most_2h_plus_1_dimensions(size, rank):
    torch.manual_seed(0)
    filters = NIFFDepthwise(96, MLP_SIZES[size]).spatial_filters(14, 14).detach().double()
    assert torch.linalg.matrix_rank(filters.reshape(96, -1), rtol=1e-5) == rank  # float32 noise below 1e-7


def test_centre_window_and_energy_outside_on_a_constructed_filter():
    f = torch.zeros(1, 7, 7)
    f[0, 2:5, 2:5] = 1.0  # energy 9 in the central 3 x 3
    f[0, 0, 6] = 2.0  # energy 4 in a corner
    assert torch.equal(centre_window(f, 3), torch.ones(1, 3, 3))
    assert energy_outside(f, 3) == pytest.approx(4 / 13)
    assert energy_outside(f, 7) == 0.0
    assert energy_outside(torch.zeros(2, 5, 5), 3) == 0.0
    # an even map: the centre is (H // 2, W // 2), and a window larger than the map is zero past it
    g = torch.arange(16.0).reshape(1, 4, 4)
    window = centre_window(g, 5)
    assert window.shape == (1, 5, 5) and window[0, 2, 2] == g[0, 2, 2]
    assert torch.equal(window[0, :4, :4], g[0]) and window[0, 4].abs().sum() == 0 and window[0, :, 4].abs().sum() == 0
    assert energy_outside(g, 5) == 0.0  # exactly: nothing lies outside


def test_spec_builds_a_convmixer_with_niff_in_place_of_the_depthwise_conv():
    assert [models.parse_spec(f"convmixer-8/2{tail}")["niff"] for tail in ("", "-niff", "-niff-big")] == [
        None, "small", "big"]
    big = models.build_model("convmixer-8/2-niff-big", num_classes=3, in_chans=1, patch_size=2)
    assert mlp_shapes(niff_layers(big)[1][1])[-1] == (8, 32)
    model = models.build_model("convmixer-8/2-niff", num_classes=3, in_chans=1, kernel_size=5, patch_size=2)
    assert [name for name, _ in niff_layers(model)] == ["blocks.0.0.fn.0", "blocks.1.0.fn.0"]
    assert models.depthwise_convs(model) == []
    assert model(torch.zeros(2, 1, 12, 12)).shape == (2, 3)
    with pytest.raises(ValueError, match="NIFF ConvMixer"):
        models.model_from_state_dict(model.state_dict(), "convmixer")


def test_covariance_init_schemes_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="NIFF.*no k x k weights for the 'gaussian' init"):
        TINY_NIFF.replace(init="gaussian").validate()
    TINY_NIFF.validate()


@pytest.fixture(scope="module")
def niff_run():
    return train.train(TINY_NIFF.replace(keep_state_dict=True))


def test_a_tiny_niff_convmixer_trains_and_keeps_its_cropped_covariances(niff_run):
    assert niff_run.status == "ok" and len(niff_run.history["loss"]) == 3
    assert niff_run.layer_names == ["blocks.0.0.fn.0", "blocks.1.0.fn.0"]
    assert [S.shape for S in niff_run.covariances] == [(25, 25), (25, 25)]
    # the covariances are those of the trained weights' spatial filters on 6 x 6 maps, cropped to 5 x 5
    model = models.build_model(TINY_NIFF.model, num_classes=2, in_chans=1, kernel_size=5, patch_size=2)
    models.load_checkpoint_into(model, niff_run.state_dict)
    for (_, layer), S, share in zip(niff_layers(model), niff_run.covariances, niff_run.final["niff_energy_outside"]):
        full = layer.spatial_filters(6, 6).detach()
        assert torch.allclose(S, covariance.empirical(centre_window(full, 5)), atol=1e-6)
        assert share == pytest.approx(energy_outside(full, 5)) and 0 <= share < 1


def test_frozen_niff_filters_keep_their_init():
    run = train.train(TINY_NIFF.replace(freeze_filters=True, keep_state_dict=True))
    initial = train.build_model_for(TINY_NIFF, train.load_training_data(TINY_NIFF)[-1]).state_dict()
    assert all(torch.equal(run.state_dict[key], value) for key, value in initial.items() if ".fn.0." in key)


def test_niff_run_goes_through_the_analyses(niff_run):
    learned = learned_sets.learned_from_run(niff_run)
    fits = learned_sets.layer_fits(learned.covariances)
    assert learned.kernel_size == 5 and all(f["sigma"] > 0 and -1 <= f["r"] <= 1 for f in fits)
    trained = frequency.frequency_view("trained", run=niff_run, n=16)
    assert trained.summary.kernel_size == 5 and len(trained.fitted) == 2
    assert reach.kernel_reach_note(TINY_NIFF) is None
    assert "central 5 × 5 window" in reach.run_reach_warning(niff_run)


def test_crop_note_says_when_the_window_holds_the_whole_map(niff_run):
    whole = dataclasses.replace(niff_run, final={**niff_run.final, "niff_energy_outside": [0.0, 0.0]})
    assert reach.niff_crop_note(whole).endswith("holds the whole map: none of their energy is left out.")
    part = dataclasses.replace(niff_run, final={**niff_run.final, "niff_energy_outside": [0.0, 0.125]})
    assert reach.niff_crop_note(part).endswith("per layer: 0.0, 12.5 %.")


def test_niff_covariances_initialize_a_kxk_convmixer(niff_run):
    model = models.build_model("convmixer-8/3", num_classes=2, in_chans=1, kernel_size=7, patch_size=2)
    assert len(init.init_depthwise_(model, "learned", covariances=niff_run.covariances)) == 3


def test_learned_covariances_page_loads_a_stored_niff_run(niff_run):
    run_id = background.job_manager().store.save(niff_run, name="niff")
    stored = background.job_manager().store.get(run_id)
    assert stored.final["niff_energy_outside"] == pytest.approx(niff_run.final["niff_energy_outside"])
    at = run_page("convcov_app/pages/4_Learned_Covariances.py", timeout=120)
    label = next(o for o in at.selectbox(key="lc_run").options if o.startswith(f"#{run_id} "))
    at.selectbox(key="lc_run").set_value(label).run()
    assert_clean(at, "a stored NIFF run")
    assert "convmixer-8/2-niff on noisy-bars" in at.markdown[1].value
    assert len(at.get("plotly_chart")) == 5
    assert any("central 5 × 5 window" in w.value for w in at.warning)
    fits = learned_sets.layer_fits(niff_run.covariances)
    opened = learned_sets.most_structured_layer(fits)
    why = "the widest bump" if fits[opened]["r"] >= learned_sets.STRUCTURED_MIN_R else "the best fit (no layer's r"
    assert any(c.value.startswith(f"The page opens on layer {opened + 1}, {why}") for c in at.caption)


def stored_niff_run_id(niff_run) -> int:
    store = background.job_manager().store
    return next((s.id for s in store.list() if s.name == "niff"), None) or store.save(niff_run, name="niff")


def test_frequency_view_shows_a_stored_niff_runs_filters(niff_run):
    run_id = stored_niff_run_id(niff_run)
    at = run_page("convcov_app/pages/6_Frequency_View.py", timeout=60)
    for source in ("Learned covariance of a network", "Trained filters of a network"):
        at.radio(key="fv_source").set_value(source).run()
        label = next(o for o in at.selectbox(key="fv_run").options if o.startswith(f"#{run_id} "))
        at.selectbox(key="fv_run").set_value(label).run()
        assert_clean(at, source)
        assert len(at.get("plotly_chart")) == 4
        assert any("central 5 × 5 window" in w.value for w in at.warning)


def test_feature_ansatz_analyses_a_stored_niff_run(niff_run):
    run_id = stored_niff_run_id(niff_run)
    at = run_page("convcov_app/pages/5_Feature_Ansatz.py", timeout=60)
    at.radio(key="fa_source").set_value("A saved run (weights needed)").run()
    label = next(o for o in at.selectbox(key="fa_run").options if o.startswith(f"#{run_id} "))
    at.selectbox(key="fa_run").set_value(label).run()
    at.select_slider(key="fa_n_images").set_value(16).run()
    assert_clean(at, "a stored NIFF run")
    assert list(at.dataframe[0].value["layer"]) == ["stem.0", "blocks.0.1", "blocks.1.1"]  # not the NIFF MLPs


def test_training_lab_offers_niff_models_with_the_default_init_only():
    at = run_page(LAB, timeout=120)
    at.selectbox(key="lab_preset").set_value(lab.NIFF_TRAINED).run()
    assert_clean(at, "the NIFF preset")
    assert at.selectbox(key="lab_model").value == "convmixer-64/8-niff"
    assert at.multiselect(key="lab_inits").options == [labels.scheme_label("default")]
    assert at.slider(key="lab_k").label.startswith("Window k") and at.slider(key="lab_k").value == 15
    assert "3 runs:** default × seed(s) 0, 1, 2" in " ".join(m.value for m in at.markdown)
    at.selectbox(key="lab_model").set_value("convmixer-64/6").run()  # back to k x k: every filter init
    assert labels.scheme_label("gaussian") in at.multiselect(key="lab_inits").options
    assert at.slider(key="lab_k").label.startswith("Kernel size")


def test_training_lab_trains_a_custom_niff_convmixer_and_stores_its_cropped_covariances():
    at = new_app(LAB, timeout=120).run()
    at.selectbox(key="lab_dataset").set_value("noisy-bars")
    at.selectbox(key="lab_model").set_value("custom ConvMixer").run()
    at.select_slider(key="lab_width").set_value(8)
    at.slider(key="lab_depth").set_value(2)
    at.radio(key="lab_spatial").set_value("NIFF, small MLP (2-8-4-C)").run()
    assert at.multiselect(key="lab_inits").value == [labels.scheme_label("default")]
    at.slider(key="lab_k").set_value(5)
    at.number_input(key="lab_patch").set_value(4)
    at.radio(key="lab_filters").set_value("trained")
    at.number_input(key="lab_seeds").set_value(1)
    at.number_input(key="lab_max_steps").set_value(3)
    at.run()
    assert_clean(at, "a custom NIFF ConvMixer")
    at.button(key="lab_run").click().run()
    poll_until_finished(at)
    assert_clean(at, "the NIFF comparison finished")
    store = background.job_manager().store
    run = store.get(max(s.id for s in store.list() if s.model == "convmixer-8/2-niff"))
    assert run.status == "ok" and [S.shape for S in run.covariances] == [(25, 25), (25, 25)]
    assert len(run.final["niff_energy_outside"]) == 2


def test_a_sweep_races_niff_against_kxk_filters_on_the_pool(tmp_path):
    from convcov_core.sweep import LocalPool, Sweep, SweepStore, run_sweep, trial_table

    base = TINY_NIFF.replace(model="convmixer-8/2")
    sweep = Sweep("niff", base, {"model": ["convmixer-8/2", "convmixer-8/2-niff"]}, ["default"], [0, 1])
    outcome = run_sweep(sweep, SweepStore(tmp_path / "runs.db"), LocalPool(1))
    assert (outcome.ran, outcome.failed) == (4, 0)
    table = trial_table(sweep, SweepStore(tmp_path / "runs.db"))
    assert sorted(table["model"]) == ["convmixer-8/2"] * 2 + ["convmixer-8/2-niff"] * 2
    assert table["test_acc"].notna().all()
    with pytest.raises(ValueError, match="NIFF"):  # a covariance init for NIFF filters: refused before any run
        Sweep("bad", base, {"model": ["convmixer-8/2-niff"]}, ["default", "gaussian"], [0]).validate().trials()
