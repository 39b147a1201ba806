"""Pretrained timm models (convcov_core.pretrained, `learned --timm NAME --pretrained`, the Learned
Covariances page's pretrained source), on fixtures written in the exact place and format timm reads:
a small registered ConvNeXt's random weights as model.safetensors in a temporary Hugging Face cache
(models--timm--<name>.<tag>/refs/main and snapshots/<revision>/), offline, or as a local file."""

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from convcov_core import covariance, init, learned_sets, pretrained
from convcov_core.cli import main
from helpers.browser import free_port
from helpers.pages import new_app

ROOT = Path(__file__).resolve().parents[1]
NAME = "convnext_zepto_rms"  # the smallest registered ConvNeXt: 10 depthwise 7 x 7 layers, 2.2 M weights
OTHER = "convnext_atto"  # one more ConvNeXt (12 layers), for the local-file path
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache: the variables a user sets, and huggingface_hub's
    constants, which it reads from them once, on import."""
    from huggingface_hub import constants

    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return home / "hub"


@pytest.fixture
def no_hub(hf_cache, monkeypatch):
    """The same empty cache, not offline, with the hub at a closed port on 127.0.0.1 (HF_ENDPOINT):
    what a machine without network meets, deterministically. The hub's URL."""
    from huggingface_hub import constants

    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return endpoint


@contextmanager
def silent_hub():
    """A hub that takes connections and never answers: yield (its URL, the connections it took)."""
    server = socket.create_server(("127.0.0.1", 0))
    taken = []

    def accept():
        while True:
            try:
                taken.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", taken
    finally:
        server.close()
        for connection in taken:
            connection.close()


def random_model(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False)


def write_to_hub_cache(name: str, model: torch.nn.Module) -> Path:
    """The model's weights as huggingface_hub caches timm/<name>.<tag>'s model.safetensors."""
    repository, _ = pretrained.hub_files(name)
    folder = pretrained.hub_cache_folder(repository)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(REVISION)
    snapshot = folder / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    path = snapshot / "model.safetensors"
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(path))
    return path


def direct_covariances(model: torch.nn.Module) -> list[torch.Tensor]:
    return [covariance.empirical(conv.weight.detach().float()) for _, conv in init.depthwise_convs(model)]


def test_weights_in_the_hub_cache_load_through_timm_and_give_their_covariances(hf_cache):
    model = random_model(NAME)
    path = write_to_hub_cache(NAME, model)
    assert path.parent.parent.parent == hf_cache / "models--timm--convnext_zepto_rms.ra4_e3600_r224_in1k"
    learned = pretrained.learned_from_pretrained(NAME)
    expected = direct_covariances(model)
    assert (learned.depth, learned.kernel_size) == (10, 7)
    assert all(torch.equal(a, b) for a, b in zip(learned.covariances, expected, strict=True))
    assert learned.layer_names[0] == "stages.0.blocks.0.conv_dw"
    assert learned.source == "timm/convnext_zepto_rms.ra4_e3600_r224_in1k, pretrained weights through timm"


def test_a_local_weights_file_loads_through_pretrained_cfg_overlay(hf_cache, tmp_path):
    model = random_model(OTHER, seed=1)
    path = tmp_path / "atto.pth"
    torch.save(model.state_dict(), path)  # read back by timm with torch.load(weights_only=True)
    learned = pretrained.learned_from_pretrained(OTHER, path)
    assert learned.depth == 12
    assert all(torch.equal(a, b) for a, b in zip(learned.covariances, direct_covariances(model), strict=True))
    assert learned.source == "timm convnext_atto with the weights of atto.pth"


def test_weights_that_are_missing_or_of_another_model_are_one_clear_line(hf_cache, tmp_path):
    with pytest.raises(ValueError) as missing:
        pretrained.load_pretrained("convnext_xxlarge")  # refused from the cache alone, before 846 M weights
    message = str(missing.value)
    assert "\n" not in message
    assert "timm/convnext_xxlarge.clip_laion2b_soup_ft_in1k" in message
    assert str(hf_cache / "models--timm--convnext_xxlarge.clip_laion2b_soup_ft_in1k") in message
    assert "`hf download timm/convnext_xxlarge.clip_laion2b_soup_ft_in1k`" in message and "weights file" in message
    other = tmp_path / "zepto.safetensors"
    save_file({k: v.contiguous() for k, v in random_model(NAME).state_dict().items()}, str(other))
    with pytest.raises(ValueError, match=r"^zepto.safetensors does not hold timm's convnext_atto weights: "
                                         r"Error\(s\) in loading state_dict for ConvNeXt: (Missing|Unexpected)"):
        pretrained.load_pretrained(OTHER, other)
    (tmp_path / "noise.pth").write_bytes(os.urandom(256))
    with pytest.raises(ValueError, match="^noise.pth does not hold timm's convnext_atto weights"):
        pretrained.load_pretrained(OTHER, tmp_path / "noise.pth")
    with pytest.raises(ValueError, match="weights file .*nope.pth does not exist"):
        pretrained.load_pretrained(OTHER, tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="timm has no model named 'convnxt_atto'; similar names: convnext_atto"):
        pretrained.load_pretrained("convnxt_atto")


def test_mixed_kernel_models_keep_their_largest_square_filters():
    torch.manual_seed(0)
    kept, left_out = pretrained.large_kernel_layers(timm.create_model("edgenext_xx_small", pretrained=False))
    assert [conv.kernel_size for _, conv in kept] == [(9, 9)]
    assert left_out == {(3, 3): 8, (5, 5): 1, (7, 7): 5}
    kept, left_out = pretrained.large_kernel_layers(timm.create_model("inception_next_atto", pretrained=False))
    assert {conv.kernel_size for _, conv in kept} == {(3, 3)} and left_out == {(1, 9): 12, (9, 1): 12}


def test_cli_learned_from_a_pretrained_model_saves_a_set_for_the_learned_init(hf_cache, capsys):
    model = random_model(NAME)
    write_to_hub_cache(NAME, model)
    assert main(["learned", "--timm", NAME, "--pretrained", "--save-set", "zepto"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("timm/convnext_zepto_rms.ra4_e3600_r224_in1k, pretrained weights through timm: 10 "
                          "depthwise layer(s), 7 x 7 filters")
    assert "stages.3.blocks.1.conv_dw" in out and "set:zepto" in err
    saved = learned_sets.load_covariance_set("zepto")
    assert all(torch.allclose(a, b) for a, b in zip(saved, direct_covariances(model), strict=True))


def test_cli_refuses_missing_weights_and_bad_options_with_exit_code_2(hf_cache, capsys):
    for argv, says in ((["--timm", OTHER, "--pretrained"], "`hf download timm/convnext_atto.d2_in1k`"),
                       (["--timm", OTHER], "needs --pretrained"),
                       (["--pretrained"], "go with --timm NAME"),
                       (["--timm", OTHER, "--pretrained", "--weights", "nope.pth"], "nope.pth does not exist")):
        assert main(["learned", *argv]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_cli_reads_the_cache_that_the_environment_names(hf_cache, tmp_path):
    """The real start-up path: a fresh interpreter that reads HF_HOME and HF_HUB_OFFLINE itself."""
    write_to_hub_cache(NAME, random_model(NAME))
    env = {**os.environ, "CONVCOV_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "convcov_core", "learned", "--timm", NAME, "--pretrained"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "10  stages.3.blocks.1.conv_dw" in done.stdout
    env["HF_HOME"] = env["HF_HUB_CACHE"] = str(tmp_path / "empty")
    done = subprocess.run([sys.executable, "-m", "convcov_core", "learned", "--timm", NAME, "--pretrained"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "hf download timm/convnext_zepto_rms" in done.stderr
    assert str(tmp_path / "empty") in done.stderr and "Traceback" not in done.stderr


def test_without_network_the_hub_is_asked_once_and_the_message_names_the_weights_folder(no_hub):
    """The hub client would retry 5 times with backoff for each of two files (about a minute)."""
    started = time.monotonic()
    with pytest.raises(ValueError) as missing:
        pretrained.load_pretrained(OTHER)
    assert time.monotonic() - started < 5
    message = str(missing.value)
    assert "\n" not in message
    assert message.startswith(f"no pretrained weights for timm's convnext_atto on this machine: the hub ({no_hub}) "
                              f"gave no answer within 3 s ([Errno 111] Connection refused)")
    assert f"Put the weights file in {pretrained.weights_dir()} (download model.safetensors from " \
           f"{no_hub}/timm/convnext_atto.d2_in1k" in message
    assert "save it as, e.g., convnext_atto.safetensors" in message and "--weights FILE" in message
    assert "`hf download timm/convnext_atto.d2_in1k`" in message and str(no_hub) in message


def test_a_hub_that_never_answers_is_given_one_short_try_and_the_cache_is_read(no_hub, monkeypatch):
    from huggingface_hub import constants

    model = random_model(NAME)
    write_to_hub_cache(NAME, model)
    with silent_hub() as (endpoint, taken):
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        started = time.monotonic()
        with pytest.raises(ValueError, match=r"gave no answer within 3 s \(timed out\).*Put the weights file in "):
            pretrained.load_pretrained(OTHER)
        assert time.monotonic() - started < pretrained.HUB_PROBE_S + 2 and len(taken) == 1
        learned = pretrained.learned_from_pretrained(NAME)  # in the cache: read from it, as offline
        assert len(taken) == 2
    assert all(torch.equal(a, b) for a, b in zip(learned.covariances, direct_covariances(model), strict=True))
    assert learned.source == "timm/convnext_zepto_rms.ra4_e3600_r224_in1k, pretrained weights through timm"


def test_the_cli_without_network_names_the_weights_folder_and_exits_2(hf_cache, tmp_path):
    """A fresh interpreter that reads HF_ENDPOINT (a closed port) itself, HF_HUB_OFFLINE unset."""
    env = {**os.environ, "CONVCOV_HOME": str(tmp_path / "home"), "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    env.pop("HF_HUB_OFFLINE")
    code = ("import sys, time; from convcov_core.cli import main; started = time.monotonic(); "
            "code = main(['learned', '--timm', 'convnext_atto', '--pretrained']); "
            "print(f'{time.monotonic() - started:.1f}'); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert float(done.stdout.split()[-1]) < 5, done.stdout
    assert f"Put the weights file in {tmp_path / 'home' / 'weights'} " in done.stderr
    assert "Retrying" not in done.stderr


def pretrained_page(name: str, weights: str | None = None):
    at = new_app("convcov_app/pages/4_Learned_Covariances.py", timeout=120).run()
    at.radio(key="lc_source").set_value("A pretrained timm model").run()
    at.selectbox(key="lc_timm").set_value(name).run()
    if weights is not None:
        at.selectbox(key="lc_timm_weights").set_value(weights).run()
    return at


def test_page_shows_a_pretrained_models_covariances_and_a_missing_ones_remedy(hf_cache):
    model = random_model(NAME)
    write_to_hub_cache(NAME, model)
    at = pretrained_page("convnext_zepto_rms.ra4_e3600_r224_in1k")
    assert not at.exception and not at.error
    assert any("timm/convnext_zepto_rms.ra4_e3600_r224_in1k, pretrained weights through timm. 10 depthwise" in m.value
               for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 4
    at = pretrained_page("convmixer_1536_20.in1k")
    assert not at.exception and len(at.error) == 1
    assert at.error[0].value.startswith("no pretrained weights for timm's convmixer_1536_20.in1k on this machine")
    assert "`hf download timm/convmixer_1536_20.in1k`" in at.error[0].value


def test_page_without_network_says_within_seconds_where_to_put_the_weights_file(no_hub):
    at = new_app("convcov_app/pages/4_Learned_Covariances.py", timeout=120).run()
    at.radio(key="lc_source").set_value("A pretrained timm model").run()
    started = time.monotonic()
    at.selectbox(key="lc_timm").set_value("convnext_atto.d2_in1k").run()
    assert time.monotonic() - started < 10  # the page's own rerun included
    assert not at.exception and len(at.error) == 1
    assert f"Put the weights file in {pretrained.weights_dir()} " in at.error[0].value
    assert "the Learned Covariances page lists it under Weights" in at.error[0].value


def test_page_reads_a_weights_file_from_the_weights_folder(hf_cache):
    model = random_model(OTHER, seed=2)
    pretrained.weights_dir().mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), pretrained.weights_dir() / "my-atto.pth")
    at = pretrained_page("convnext_atto.d2_in1k", "my-atto.pth")
    assert not at.exception and not at.error
    assert any("timm convnext_atto.d2_in1k with the weights of my-atto.pth. 12 depthwise" in m.value
               for m in at.markdown)
