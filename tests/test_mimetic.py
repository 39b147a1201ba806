"""Mimetic initialization of self-attention: the per-head products against their targets (statistics
with tolerances from the sample size), the rank-k factorization, refusals, and the training path."""

import math

import numpy as np
import pytest
import timm
import torch

from convcov_core import init, models
from convcov_core.compare import compare
from convcov_core.mimetic import DEFAULTS, head_products, low_rank_factors, mimetic_target
from convcov_core.train import TrainConfig, build_model_for, load_training_data

VIT = "timm:vit_tiny_patch16_224:depth={depth},embed_dim={dim},num_heads={heads}"


def vit(dim=96, heads=1, depth=3):
    return models.build_model(VIT.format(depth=depth, dim=dim, heads=heads), num_classes=10, in_chans=1,
                              patch_size=4, image_size=28)


def stacked_products(model):
    """(QK, VO): every layer's and head's d x d products, stacked (n x d x d, float64)."""
    pairs = [head_products(block.attn) for block in model.blocks]
    return torch.cat([qk for qk, _ in pairs]).double(), torch.cat([vo for _, vo in pairs]).double()


def diagonal_and_off(products):
    d = products.shape[-1]
    off = ~torch.eye(d, dtype=torch.bool)
    return products.diagonal(dim1=-2, dim2=-1), products[:, off]


def assert_target_statistics(products, alpha, beta):
    """The diagonal's mean is beta up to the noise of n d draws of std alpha / sqrt(d) (4 standard
    errors); the off-diagonal entries have mean 0 and std alpha / sqrt(d) (sample std within 4
    relative standard errors, 1 / sqrt(2 m) for m entries)."""
    d = products.shape[-1]
    diagonal, off = diagonal_and_off(products)
    noise = alpha / math.sqrt(d)
    assert diagonal.mean().item() == pytest.approx(beta, abs=4 * noise / math.sqrt(diagonal.numel()))
    assert off.mean().item() == pytest.approx(0, abs=4 * noise / math.sqrt(off.numel()))
    assert off.std().item() == pytest.approx(noise, rel=4 / math.sqrt(2 * off.numel()))


def value_proj_factors(model):
    """Per layer the stored value weight (out x in) times the projection's: L R, the layer's target."""
    d = model.blocks[0].attn.qkv.in_features
    return torch.stack([block.attn.qkv.weight[2 * d:].double() @ block.attn.proj.weight.double()
                        for block in model.blocks]).detach()


def test_one_head_query_key_products_are_the_targets():
    """With one head (k = d) W_q W_k^T is alpha1 Z / sqrt(d) + beta1 I exactly."""
    d, depth = 96, 3
    model = vit(dim=d, heads=1, depth=depth)
    names = init.mimetic_(model, generator=torch.Generator().manual_seed(0))
    assert names == [f"blocks.{i}.attn" for i in range(depth)]
    assert_target_statistics(stacked_products(model)[0], DEFAULTS["alpha1"], DEFAULTS["beta1"])


@pytest.mark.parametrize("heads", [1, 3])
def test_each_layer_splits_one_value_projection_target_over_its_heads(heads):
    """The value weight L and the projection's R factor one target per layer, L R = alpha2 Z / sqrt(d)
    - beta2 I, whatever the heads; the layer's product R L (summed over the heads) has its trace."""
    d = 96
    model = vit(dim=d, heads=heads, depth=3)
    init.mimetic_(model, generator=torch.Generator().manual_seed(5))
    targets = value_proj_factors(model)
    assert_target_statistics(targets, DEFAULTS["alpha2"], -DEFAULTS["beta2"])
    layer_products = stacked_products(model)[1].reshape(3, heads, d, d).sum(1)
    torch.testing.assert_close(layer_products.diagonal(dim1=-2, dim2=-1).sum(-1),
                               targets.diagonal(dim1=-2, dim2=-1).sum(-1), rtol=0, atol=1e-4)


def assert_uncorrelated(products):
    """The noise (the product less its diagonal mean times I) of the first is uncorrelated with the rest's."""
    d = products.shape[-1]
    first = products[0] - products[0].diagonal().mean() * torch.eye(d)
    for other in products[1:]:
        rest = other - other.diagonal().mean() * torch.eye(d)
        r = torch.corrcoef(torch.stack([first.flatten(), rest.flatten()]))[0, 1].item()
        assert abs(r) < 4 / d  # independent noise: |r| within 4 standard errors 1 / sqrt(d^2)


def test_every_query_key_head_and_every_value_projection_layer_draws_its_own_noise():
    model = vit(dim=64, heads=2, depth=3)
    init.mimetic_(model, generator=torch.Generator().manual_seed(1))
    assert_uncorrelated(stacked_products(model)[0])
    assert_uncorrelated(value_proj_factors(model))


def test_several_heads_get_the_best_rank_k_approximation_with_the_papers_signs():
    """Each head's product has rank k = d / H, and leans to +I (queries/keys) and -I (values/proj)."""
    d, heads = 96, 3
    model = vit(dim=d, heads=heads, depth=2)
    init.mimetic_(model, generator=torch.Generator().manual_seed(2))
    qk, vo = stacked_products(model)
    for products, sign in ((qk, 1), (vo, -1)):
        assert (torch.linalg.matrix_rank(products.float()) == d // heads).all()
        assert (sign * products.diagonal(dim1=-2, dim2=-1).mean(-1) > 0).all()


# A transcription of the reference (osiriszjq/structured_init, pytorch-image-models/timm/models/
# vision_transformer.py: get_ortho_like and the 'mimetic' branch of VisionTransformer._init_weights),
# kept to its lines. Changed: get_ortho_like's dist="normal" branch, with np.random.normal's draw
# taken from a torch generator (`randn`) so that both sides get the same draws; `self` is the model
# (given the fork's num_heads and depth attributes); the unused `heads` argument and layer depth `d`
# are dropped.
def get_ortho_like(dim, alpha, beta, sign, randn):
    A = alpha * randn(dim) / (dim**0.5) + sign * beta * np.eye(dim)
    U, S, V = np.linalg.svd(A)
    L = U @ np.diag(np.sqrt(S))
    R = np.diag(np.sqrt(S)) @ V
    return L, R


def reference_mimetic(self, alpha, beta, randn):
    head_dim = self.embed_dim // self.num_heads
    for i in range(self.depth):
        for h in range(self.num_heads):
            Q, K = get_ortho_like(self.embed_dim, alpha, beta, 1, randn)
            Q = Q[:, :head_dim]
            K = K.T[:, :head_dim]
            self.blocks[i].attn.qkv.weight.data[(h*head_dim):((h+1)*head_dim)] = torch.tensor(Q.T).float()
            self.blocks[i].attn.qkv.weight.data[self.embed_dim+(h*head_dim):self.embed_dim+((h+1)*head_dim)] = \
                torch.tensor(K.T).float()
    for block in self.blocks:
        V, Proj = get_ortho_like(self.embed_dim, 0.4, 0.4, -1, randn)
        block.attn.qkv.weight.data[2*self.embed_dim:] = torch.tensor(V).float()
        block.attn.proj.weight.data = torch.tensor(Proj).float()


def test_vit_tiny_gets_the_reference_construction():
    """timm's vit_tiny_patch16_224 (d = 192, 3 heads, 12 layers), convcov against the reference with
    the same draws: the same per-head products (the SVD's signs may differ, which leaves W_q W_k^T
    alone and conjugates the value/projection products by a diagonal of +-1: the same diagonal and
    absolute values), and per layer W_proj W_v's diagonal mean is -beta2 (measured -0.395 to -0.401;
    the per-head W_q W_k^T diagonal 0.394, off-diagonal std x sqrt(d) 0.72)."""
    ours, reference = (timm.create_model("vit_tiny_patch16_224", pretrained=False) for _ in range(2))
    reference.num_heads, reference.depth = reference.blocks[0].attn.num_heads, len(reference.blocks)
    init.mimetic_(ours, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    reference_mimetic(reference, DEFAULTS["alpha1"], DEFAULTS["beta1"],
                      lambda dim: torch.randn(dim, dim, generator=generator, dtype=torch.float64).numpy())
    for mine, theirs in zip(ours.blocks, reference.blocks):
        (qk, vo), (qk_ref, vo_ref) = head_products(mine.attn), head_products(theirs.attn)
        torch.testing.assert_close(qk, qk_ref, rtol=0, atol=1e-5)
        torch.testing.assert_close(vo.diagonal(dim1=-2, dim2=-1), vo_ref.diagonal(dim1=-2, dim2=-1), rtol=0, atol=1e-5)
        torch.testing.assert_close(vo.abs(), vo_ref.abs(), rtol=0, atol=1e-5)
        assert vo.sum(0).diagonal().mean().item() == pytest.approx(-DEFAULTS["beta2"], abs=0.05)


def test_low_rank_factors_are_the_truncated_svd():
    """Eckart-Young: ||T - L R||_F^2 is the sum of the dropped squared singular values, and L, R
    share the square root of the kept ones (equal column / row norms)."""
    target = mimetic_target(40, 0.7, 0.7, torch.Generator().manual_seed(3))
    s = torch.linalg.svdvals(target)
    for rank in (1, 10, 40, 50):
        left, right = low_rank_factors(target, rank)
        assert left.shape == (40, rank) and right.shape == (rank, 40)
        error = torch.linalg.matrix_norm(target - left @ right) ** 2
        assert error.item() == pytest.approx(s[rank:].pow(2).sum().item(), abs=1e-9)
        torch.testing.assert_close(left.norm(dim=0), right.norm(dim=1))


def test_biases_and_other_layers_keep_their_init():
    model = vit(dim=64, heads=2, depth=2)
    before = {name: p.clone() for name, p in model.named_parameters()}
    init.mimetic_(model)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {f"blocks.{i}.attn.{layer}.weight" for i in range(2) for layer in ("qkv", "proj")}


@pytest.mark.parametrize("spec, missing", [("convmixer-16/2", "has no attn"), ("cnn-8,8", "has no 'blocks'")])
def test_models_without_standard_attention_are_refused(spec, missing):
    model = models.build_model(spec, num_classes=10, in_chans=1)
    with pytest.raises(ValueError, match=f"mimetic init needs .*{missing}"):
        init.mimetic_(model)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, "0.7", True])
def test_bad_coefficients_are_refused(bad):
    with pytest.raises(ValueError, match="alpha1 must be a number >= 0"):
        init.mimetic_(vit(depth=1), alpha1=bad)


def test_unknown_init_names_list_the_model_schemes_too():
    with pytest.raises(ValueError, match="choose one of: default.*mimetic"):
        TrainConfig(init="mimetik").validate()


def test_model_spec_overrides_reach_timm_and_bad_ones_are_refused():
    parsed = models.parse_spec("timm:vit_tiny_patch16_224:depth=2,embed_dim=64,num_heads=1")
    assert parsed["overrides"] == {"depth": 2, "embed_dim": 64, "num_heads": 1}
    assert (parsed["dim"], parsed["depth"]) == (64, 2)
    model = vit(dim=64, heads=1, depth=2)
    assert len(model.blocks) == 2 and model.embed_dim == 64 and model.pos_embed.shape == (1, 7 * 7 + 1, 64)
    with pytest.raises(ValueError, match="does not take the overrides"):
        models.build_model("timm:convnext_atto:no_such_argument=3", num_classes=10, in_chans=1)


SMALL = dict(dataset="mnist5k", model=VIT.format(depth=2, dim=32, heads=1), kernel_size=None, patch_size=7,
             epochs=1, batch_size=32, max_steps=3, lr=0.001, device="cpu")


def test_training_configs_build_mimetic_and_default_vits():
    info = load_training_data(TrainConfig(**SMALL))[4]
    mimetic = build_model_for(TrainConfig(**SMALL, init="mimetic", seed=4), info)
    default = build_model_for(TrainConfig(**SMALL, init="default", seed=4), info)
    (qk_m, _), (qk_d, _) = head_products(mimetic.blocks[0].attn), head_products(default.blocks[0].attn)
    assert qk_m.diagonal(dim1=-2, dim2=-1).mean() > 0.5  # beta1 = 0.7 at d = k = 32, noise 0.7 / 32
    assert qk_d.diagonal(dim1=-2, dim2=-1).abs().mean() < 0.05  # timm's own init: std 0.02 weights
    torch.testing.assert_close(mimetic.head.weight, default.head.weight)  # the same seed builds the rest


def test_compare_trains_default_against_mimetic():
    result = compare(TrainConfig(**SMALL), {"default": {"init": "default"}, "mimetic": {"init": "mimetic"}},
                     [0, 1])
    runs = [run for variant in ("default", "mimetic") for run in result.runs[variant]]
    assert len(runs) == 4 and all(run.status == "ok" for run in runs), [run.message for run in runs]
    assert all(len(run.history["loss"]) == 3 and 0 <= run.final["test_acc"] <= 100 for run in runs)


def saved_vit_runs(tmp_path, monkeypatch):
    """A default-vs-mimetic comparison of the small ViT, with weights, in a fresh run store."""
    from convcov_core.runs import RunStore

    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))
    result = compare(TrainConfig(**SMALL, keep_state_dict=True),
                     {"default": {"init": "default"}, "mimetic": {"init": "mimetic"}}, [0])
    store = RunStore()
    store.save_comparison(result, name="vit")
    return store


def test_a_saved_runs_products_at_init_are_rebuilt_exactly_and_training_moves_them(tmp_path, monkeypatch):
    from convcov_core import attention

    store = saved_vit_runs(tmp_path, monkeypatch)
    mimetic_run = next(store.get(s.id) for s in store.list() if s.init == "mimetic")
    stages = attention.run_products(mimetic_run)
    info = load_training_data(mimetic_run.config)[4]
    rebuilt = attention.model_products(build_model_for(mimetic_run.config, info))
    for (qk, vo), (qk_again, vo_again) in zip(stages["at init"], rebuilt):
        torch.testing.assert_close(qk, qk_again)
        torch.testing.assert_close(vo, vo_again)
    assert not torch.equal(stages["at init"][0][0], stages["trained"][0][0])
    rows = [row for row in attention.stats_rows(stages) if row["weights"] == "at init"]
    assert len(rows) == 2  # two layers, one head
    d = 32
    for row in rows:
        assert row["W_q W_kᵀ diagonal"] == pytest.approx(0.7, abs=4 * 0.7 / d)
        assert row["W_v W_proj diagonal"] == pytest.approx(-0.4, abs=4 * 0.4 / d)
        assert row["W_q W_kᵀ off-diag. ×√d"] == pytest.approx(0.7, rel=4 / math.sqrt(2 * d * (d - 1)))
    assert attention.has_attention(SMALL["model"]) and not attention.has_attention("timm:convnext_atto")


def test_a_run_without_weights_is_refused_with_how_to_keep_them(tmp_path, monkeypatch):
    from convcov_core import attention

    store = saved_vit_runs(tmp_path, monkeypatch)
    run = store.get(store.list()[0].id)
    run.state_dict = None
    with pytest.raises(ValueError, match="kept no weights.*--keep-weights"):
        attention.run_products(run)


def test_learned_covariances_page_shows_a_saved_vits_attention(tmp_path, monkeypatch):
    from helpers.pages import assert_clean, run_page

    saved_vit_runs(tmp_path, monkeypatch)
    at = run_page("convcov_app/pages/4_Learned_Covariances.py")
    at.radio(key="lc_source").set_value("Attention of a saved ViT run").run()
    assert_clean(at, "attention source")
    runs = at.selectbox(key="lc_attn_run").options
    assert len(runs) == 2 and any("mimetic init" in label for label in runs)
    for label in runs:
        at.selectbox(key="lc_attn_run").set_value(label).run()
        at.selectbox(key="lc_attn_layer").set_value(2).run()
        assert_clean(at, label)
        assert len(at.get("plotly_chart")) == 1 and len(at.dataframe) == 1
        assert len(at.dataframe[0].value) == 4  # 2 stages x 2 layers x 1 head


def test_learned_covariances_page_says_how_to_save_a_vit_run(tmp_path, monkeypatch):
    from helpers.pages import assert_clean, run_page

    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))
    at = run_page("convcov_app/pages/4_Learned_Covariances.py")
    at.radio(key="lc_source").set_value("Attention of a saved ViT run").run()
    assert_clean(at, "no ViT runs")
    assert any("--keep-weights" in info.value for info in at.info)


MEASURED = ("compare --dataset mnist5k --model timm:vit_tiny_patch16_224:depth=4,embed_dim=64,num_heads=1 "
            "--patch-size 7 --batch-size 64 --inits default,mimetic --seeds 0,1,2 --epochs 2 --lr 0.001")


def test_lab_preset_is_the_vit_race_measured_in_the_docs():
    from convcov_app import lab
    from convcov_core.cli import build_parser
    from convcov_core.cli.training import training_config

    plan = lab.plan_comparison(lab.PRESETS[lab.VIT_MIMETIC].setup)
    assert plan.variants == {"default": {"init": "default", "freeze_filters": False},
                             "mimetic": {"init": "mimetic", "freeze_filters": False}}
    assert plan.seeds == [0, 1, 2]
    args = build_parser().parse_args(MEASURED.split())
    assert plan.base == training_config(args).replace(dataset_params={})


def test_lab_page_races_default_against_mimetic_on_the_vit():
    from convcov_app import lab
    from helpers.pages import assert_clean, run_page

    at = run_page("convcov_app/pages/3_Training_Lab.py", timeout=120)
    at.selectbox(key="lab_preset").set_value(lab.VIT_MIMETIC).run()
    assert_clean(at, "ViT preset")
    assert at.info[0].value.endswith(lab.PRESETS[lab.VIT_MIMETIC].expect)  # the page's widgets match it
    inits = at.multiselect(key="lab_inits")
    assert inits.value == ["PyTorch default (uniform)", "Mimetic attention (ViT)"] and inits.options == inits.value
    assert not [s for s in at.slider if s.key == "lab_k"]  # a ViT has no depthwise kernel to size
    at.selectbox(key="lab_model").set_value("convmixer-64/6").run()
    assert_clean(at, "back to a ConvMixer")
    assert "Mimetic attention (ViT)" not in at.multiselect(key="lab_inits").options
    assert at.slider(key="lab_k").value == 9


@pytest.mark.parametrize("dataset", ["mnist5k", "textures"])
def test_the_vit_preset_takes_the_embedded_images(dataset):
    """28 x 28 digits and 32 x 32 texture crops: the ViT is built for the dataset's image size."""
    spec, _, patch, _ = models.MODEL_PRESETS["timm-vit-4x64"]
    config = TrainConfig(dataset=dataset, model=spec, kernel_size=None, patch_size=patch, init="mimetic")
    info = load_training_data(config)[4]
    model = build_model_for(config, info)
    models.check_input_size(model, info.in_chans, info.image_size, spec, dataset)
    assert model.patch_embed.img_size == (info.image_size, info.image_size)
