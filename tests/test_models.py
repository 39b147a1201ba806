"""Models (ConvMixer, SmallCNN, timm adapters, specs, presets) and untrusted checkpoint loading."""

import io
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from convcov_core.models import (
    MODEL_PRESETS,
    ConvMixer,
    SmallCNN,
    build_model,
    convmixer_spec,
    load_checkpoint_into,
    load_state_dict,
    parse_spec,
)


def depthwise(model):
    return [m for m in model.modules()
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels]


# ------------------------------------------------------------------------------------ ConvMixer

@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("kernel_size", [3, 8, 9])
def test_convmixer_shapes_and_same_padding(kernel_size):
    model = ConvMixer(16, 3, kernel_size=kernel_size, patch_size=2, n_classes=10, in_chans=1).eval()
    x = torch.randn(2, 1, 12, 12)
    assert model(x).shape == (2, 10)
    tokens = model.stem(x)
    assert tokens.shape == (2, 16, 6, 6)
    for block in model.blocks:
        assert block(tokens).shape == tokens.shape  # "same" padding keeps the token grid
    convs = depthwise(model)
    assert len(convs) == 3
    assert all(c.kernel_size == (kernel_size, kernel_size) and c.groups == 16 for c in convs)
    assert [name for name, _ in model.named_children()] == ["stem", "blocks", "pool", "flatten", "head"]


def test_convmixer_loads_timm_convmixer_weights():
    from timm.models.convmixer import ConvMixer as TimmConvMixer

    torch.manual_seed(0)
    theirs = TimmConvMixer(dim=16, depth=2, kernel_size=5, patch_size=2, in_chans=1, num_classes=7).eval()
    ours = ConvMixer(16, 2, kernel_size=5, patch_size=2, n_classes=7, in_chans=1).eval()
    load_checkpoint_into(ours, theirs.state_dict())
    x = torch.randn(3, 1, 10, 10)
    torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("bad", [dict(dim=0), dict(depth=-1), dict(kernel_size=2.5), dict(patch_size=True)])
def test_convmixer_rejects_bad_sizes(bad):
    args = dict(dim=8, depth=1, kernel_size=3, patch_size=2) | bad
    with pytest.raises(ValueError, match="whole number >= 1"):
        ConvMixer(**args)


# ------------------------------------------------------------------------------------ SmallCNN

def test_small_cnn_blocks():
    model = SmallCNN(3, 4, widths=(8, 16), kernel_sizes=(5, 3))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5), (3, 3)]
    assert all(c.bias is None for c in convs)
    x = torch.randn(2, 3, 9, 9)
    assert model.block1(x).shape == (2, 8, 5, 5)  # padding k // 2 keeps 9 x 9, pooling halves (ceil)
    assert model(x).shape == (2, 4)
    assert SmallCNN(1, 2, widths=(4, 4, 4), kernel_sizes=7)(torch.randn(1, 1, 3, 3)).shape == (1, 2)
    with pytest.raises(ValueError, match="one kernel size per layer"):
        SmallCNN(1, 2, widths=(4, 4), kernel_sizes=(3,))


# ------------------------------------------------------------------------------------ specs

def test_parse_spec():
    assert parse_spec("convmixer-64/6") == {"kind": "convmixer", "dim": 64, "depth": 6, "widths": None,
                                            "name": "convmixer-64/6", "niff": None}
    cnn = parse_spec(" cnn-32,64 ")
    assert (cnn["kind"], cnn["widths"], cnn["depth"]) == ("cnn", [32, 64], 2)
    assert parse_spec("timm:convnext_atto")["name"] == "convnext_atto"


def test_convmixer_spec_is_what_parse_spec_reads_back():
    for niff in (None, "small", "big"):
        parsed = parse_spec(convmixer_spec(32, 3, niff))
        assert (parsed["kind"], parsed["dim"], parsed["depth"], parsed["niff"]) == ("convmixer", 32, 3, niff)
    assert convmixer_spec(64, 8, "big") == "convmixer-64/8-niff-big"


@pytest.mark.parametrize("spec", ["convmixer-64", "convmixer-0/4", "convmixer-8/2-nif", "resnet", "cnn-", "cnn-0,3",
                                  "timm:", "timm:a b", ""])
def test_parse_spec_refuses(spec):
    with pytest.raises(ValueError):
        parse_spec(spec)


def test_build_model_convmixer_and_cnn():
    model = build_model("convmixer-8/2", num_classes=5, in_chans=3)
    assert model.stem[0].kernel_size == (7, 7) and depthwise(model)[0].kernel_size == (9, 9)
    model = build_model("convmixer-8/2", num_classes=5, in_chans=1, kernel_size=15, patch_size=2)
    assert model.stem[0].stride == (2, 2) and depthwise(model)[1].kernel_size == (15, 15)
    cnn = build_model("cnn-4,8,8", num_classes=3, in_chans=1)
    assert [c.kernel_size[0] for c in cnn.modules() if isinstance(c, nn.Conv2d)] == [5, 3, 3]
    cnn = build_model("cnn-4,8", num_classes=3, in_chans=1, kernel_size=7)
    assert [c.kernel_size[0] for c in cnn.modules() if isinstance(c, nn.Conv2d)] == [7, 7]
    with pytest.raises(ValueError, match="without patches"):
        build_model("cnn-4,8", num_classes=3, in_chans=1, patch_size=2)
    with pytest.raises(ValueError, match="kernel size"):
        build_model("convmixer-8/2", num_classes=3, in_chans=1, kernel_size=0)


def test_build_model_timm_convnext_overrides_match_timm():
    import timm

    ours = build_model("timm:convnext_atto", num_classes=10, in_chans=1, kernel_size=9, patch_size=2)
    native = timm.create_model("convnext_atto", pretrained=False, num_classes=10, in_chans=1,
                               kernel_sizes=9, patch_size=2)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in native.state_dict().items()}
    assert all(c.kernel_size == (9, 9) for c in depthwise(ours))
    assert ours(torch.randn(1, 1, 32, 32)).shape == (1, 10)


def test_build_model_timm_convmixer_overrides():
    """timm's registered ConvMixers fix kernel and patch size in their entry points; the override
    must still give the architecture timm's ConvMixer class builds with those sizes."""
    from timm.models.convmixer import ConvMixer as TimmConvMixer

    ours = build_model("timm:convmixer_768_32", num_classes=10, in_chans=1, kernel_size=5, patch_size=4)
    reference = TimmConvMixer(dim=768, depth=32, kernel_size=5, patch_size=4, in_chans=1, num_classes=10,
                              act_layer=nn.ReLU)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}
    assert all(c.padding == "same" for c in depthwise(ours))
    assert ours.eval()(torch.randn(1, 1, 16, 16)).shape == (1, 10)


def test_build_model_timm_refuses_impossible_overrides():
    with pytest.raises(ValueError, match="no depthwise convolutions"):
        build_model("timm:resnet18", num_classes=10, in_chans=3, kernel_size=5)
    with pytest.raises(ValueError, match="patch embedding"):
        build_model("timm:resnet18", num_classes=10, in_chans=3, patch_size=4)
    with pytest.raises(ValueError, match="similar names: convnext_atto"):
        build_model("timm:convnxt_atto", num_classes=10, in_chans=3)
    with pytest.raises(ValueError, match=r"band depthwise filters \(1 x 9, 9 x 1\)"):
        build_model("timm:inception_next_atto", num_classes=10, in_chans=3, kernel_size=7)


def test_presets_build_and_run():
    for name, (spec, kernel, patch, description) in MODEL_PRESETS.items():
        model = build_model(spec, num_classes=10, in_chans=3, kernel_size=kernel, patch_size=patch,
                            image_size=32).eval()
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10), name
        assert description


# ------------------------------------------------------------------------------------ checkpoints

class PlantsFile:
    """Unpickling this object would create a file: the proof that the loader ran code."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def small_model():
    return ConvMixer(8, 1, kernel_size=3, patch_size=2, n_classes=4, in_chans=1)


def test_state_dict_round_trips(tmp_path):
    model = small_model()
    expected = model.state_dict()
    torch.save(expected, tmp_path / "plain.pt")
    torch.save(expected, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save({"state_dict": expected, "epoch": 3}, tmp_path / "wrapped.pt")
    torch.save({"model": expected, "optimizer": {"lr": 0.1}}, tmp_path / "wrapped2.pth")
    save_file(expected, tmp_path / "weights.safetensors")
    save_file(expected, tmp_path / "weights.bin")  # recognised by its header, not its name
    for name in ["plain.pt", "legacy.pt", "wrapped.pt", "wrapped2.pth", "weights.safetensors", "weights.bin"]:
        loaded = load_state_dict(tmp_path / name)
        assert loaded.keys() == expected.keys(), name
        assert all(torch.equal(loaded[k], expected[k]) for k in expected), name


@pytest.mark.parametrize("writer", ["torch_zip", "torch_legacy", "pickle"])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, writer):
    target = tmp_path / "planted.txt"
    payload = {"weight": torch.ones(2), "evil": PlantsFile(target)}
    path = tmp_path / "evil.pt"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=writer == "torch_zip")
    with pytest.raises(ValueError, match=r"arbitrary Python objects.*io\.open.*not executed"):
        load_state_dict(path)
    assert not target.exists()


def test_bad_checkpoint_files_get_distinct_messages(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(small_model().state_dict(), good)
    legacy = tmp_path / "legacy.pt"
    torch.save(small_model().state_dict(), legacy, _use_new_zipfile_serialization=False)
    safetensors_file = tmp_path / "good.safetensors"
    save_file(small_model().state_dict(), safetensors_file)

    def cut(src, name, n):
        (tmp_path / name).write_bytes(src.read_bytes()[:n])
        return tmp_path / name

    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "notes.pt").write_text("these are my notes, not weights\n")
    # other files named .safetensors: a NumPy array (its magic reads as a header of 10^17 bytes,
    # which must not be allocated) and a header that is JSON but not an object
    array = io.BytesIO()
    np.save(array, np.eye(3))
    (tmp_path / "array.safetensors").write_bytes(array.getvalue())
    (tmp_path / "list.safetensors").write_bytes(struct.pack("<Q", 3) + b"[1]")
    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    cases = {
        tmp_path / "missing.pt": "does not exist",
        tmp_path / "empty.pt": r"empty \(0 bytes\)",
        cut(good, "cut.pt", good.stat().st_size // 2): "truncated or damaged",
        cut(legacy, "cut_legacy.pt", 300): "truncated or damaged",
        cut(safetensors_file, "cut.safetensors", safetensors_file.stat().st_size - 5): "truncated",
        cut(safetensors_file, "cut_header.bin", 40): "truncated",
        tmp_path / "notes.pt": "not a checkpoint",
        tmp_path / "array.safetensors": "damaged safetensors file",
        tmp_path / "list.safetensors": "damaged safetensors file",
        tmp_path / "tensor.pt": "does not hold a state dict",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message):
            load_state_dict(path)
    with pytest.raises(ValueError, match="over the 1.0 KiB limit"):
        load_state_dict(good, max_bytes=1024)


def test_every_truncation_of_a_legacy_checkpoint_reads_as_truncated(tmp_path):
    """Cut inside a pickled class name, torch's own error looks like a forbidden object; the loader
    must still call it truncated."""
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    data = legacy.read_bytes()
    cut = tmp_path / "cut.pt"
    for n in range(1, len(data), 3):
        cut.write_bytes(data[:n])
        with pytest.raises(ValueError, match="truncated|not a checkpoint"):
            load_state_dict(cut)


def test_load_checkpoint_into_names_mismatches():
    source = small_model()
    target = small_model()
    load_checkpoint_into(target, source.state_dict())
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(target.eval()(x), source.eval()(x))
    other = ConvMixer(8, 2, kernel_size=5, patch_size=2, n_classes=4, in_chans=1)
    with pytest.raises(ValueError, match=r"blocks\.0\.0\.fn\.0\.weight: checkpoint \(8, 1, 3, 3\) vs "
                                         r"model \(8, 1, 5, 5\).*missing keys"):
        load_checkpoint_into(other, source.state_dict())
    renamed = {"module." + k: v for k, v in source.state_dict().items()}
    with pytest.raises(ValueError, match=r"unexpected keys \(\d+\): module\.stem"):
        load_checkpoint_into(small_model(), renamed)



def test_check_input_size_refuses_images_a_model_shrinks_below_its_kernels():
    from convcov_core.models import check_input_size

    convnext = build_model("timm:convnext_atto", num_classes=10, in_chans=1, kernel_size=7, patch_size=4)
    statistics = {k: v.clone() for k, v in convnext.state_dict().items()}
    with pytest.raises(ValueError, match=r"convnext \(k 7\) does not fit the 28 × 28 images of mnist5k: "
                                         r"Calculated padded input size"):
        check_input_size(convnext, 1, 28, "convnext (k 7)", "mnist5k")  # 28 / 4 / 2 / 2 = 1, then 2 x 2
    check_input_size(convnext, 1, 32, "convnext (k 7)")  # 32 is its 32x downsampling exactly
    assert convnext.training  # its mode is restored, its weights and statistics untouched
    assert all(torch.equal(v, statistics[k]) for k, v in convnext.state_dict().items())
    mixer = build_model("convmixer-8/1", num_classes=10, in_chans=3, kernel_size=3, patch_size=8).eval()
    with pytest.raises(ValueError, match="does not fit the 6 × 6 images"):
        check_input_size(mixer, 3, 6, "convmixer-8/1")  # an 8 x 8 patch on 6 x 6 images
    assert not mixer.training


def test_depthwise_reach_finds_the_weights_that_never_meet_the_image():
    from convcov_core.models import depthwise_reach

    mixer = build_model("convmixer-8/2", num_classes=10, in_chans=1, kernel_size=11, patch_size=7)
    reach = depthwise_reach(mixer, 1, 28)  # 4 x 4 maps: offsets up to 3, the central 7 x 7
    assert [(r.layer, r.kernel, r.side, r.used) for r in reach] == [(1, (11, 11), 4, (7, 7)), (2, (11, 11), 4, (7, 7))]
    assert mixer.training and all(not m._forward_pre_hooks for m in mixer.modules())
    mixer(torch.randn(4, 1, 28, 28)).square().sum().backward()
    outside = torch.ones(11, 11, dtype=torch.bool)
    outside[2:9, 2:9] = False
    for m in depthwise(mixer):
        gradient = m.weight.grad[:, 0]
        assert gradient[:, ~outside].abs().amax() > 0
        assert torch.count_nonzero(gradient[:, outside]) == 0  # what `used` promises
    convnext = build_model("timm:convnext_atto", num_classes=10, in_chans=3, kernel_size=7, patch_size=4)
    assert [(r.side, r.used[0]) for r in depthwise_reach(convnext, 3, 32)] == \
        [(8, 7)] * 2 + [(4, 7)] * 2 + [(2, 3)] * 6 + [(1, 1)] * 2  # stages of depth 2, 2, 6, 2
    bands = build_model("timm:inception_next_atto", num_classes=10, in_chans=3)
    last = [(r.kernel, r.used) for r in depthwise_reach(bands, 3, 32) if r.side == 1]
    assert last == [((3, 3), (1, 1)), ((1, 9), (1, 1)), ((9, 1), (1, 1))] * 2  # its last stage, 2 blocks
