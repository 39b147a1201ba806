"""Covariance matrices from user files: every format read, every bad matrix named, nothing unpickled."""


import numpy as np
import pytest
import torch
from safetensors.torch import save as save_safetensors

from convcov_core import matrix_files
from convcov_core.covariance import gaussian, is_psd
from convcov_core.matrix_files import inspect_covariance, projected, read_matrix
from helpers.files import Payload, npy_bytes, torch_bytes


@pytest.mark.parametrize("name, encode", [
    ("cov.npy", lambda S: npy_bytes(S.numpy())),
    ("cov.pt", torch_bytes),
    ("cov.PTH", torch_bytes),
    ("cov.safetensors", lambda S: save_safetensors({"covariance": S, "other": torch.zeros(2)})),
    ("only.safetensors", lambda S: save_safetensors({"whatever": S})),
])
def test_every_format_round_trips(name, encode):
    S = gaussian(5, 1.5)
    assert torch.equal(read_matrix(encode(S), name), S)


def test_save_then_load_from_disk(tmp_path):
    S = gaussian(3, 1.0)
    for suffix in (".npy", ".pt", ".safetensors"):
        path = matrix_files.save_tensor(S, str(tmp_path / f"m{suffix}"), "covariance")
        assert torch.equal(matrix_files.load_matrix(str(path)), S)


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    for name, data in [("evil.pt", torch_bytes({"m": torch.eye(4), "x": Payload(str(marker))})),
                       ("evil.npy", npy_bytes(np.array([Payload(str(marker))], dtype=object)))]:
        with pytest.raises(ValueError, match="pickl|unpickling"):
            read_matrix(data, name)
    assert not marker.exists()


@pytest.mark.parametrize("name, data, message", [
    ("empty.npy", b"", "empty.npy is empty"),
    ("notes.npy", b"just some text", "not a NumPy .npy file"),
    ("cut.pt", torch_bytes(torch.eye(9))[:200], "not a readable .pt matrix"),
    ("broken.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", "not a readable .safetensors"),
    ("two.safetensors", save_safetensors({"a": torch.eye(4), "b": torch.eye(4)}),
     "holds 2 tensors; name the covariance 'covariance'"),
    ("dict.pt", torch_bytes({"a": torch.eye(4)}), "expected a single tensor, found dict"),
    ("bools.pt", torch_bytes(torch.ones(4, 4, dtype=torch.bool)), "expected real numbers"),
    ("cov.txt", b"1 0\n0 1", "use a file name ending in .npy, .pt, .pth, .safetensors"),
])
def test_bad_files_each_get_their_own_message(name, data, message):
    with pytest.raises(ValueError, match=message):
        read_matrix(data, name)


def test_oversized_file_is_refused_before_parsing():
    with pytest.raises(ValueError, match="big.npy is .* MiB; the limit for a matrix is 0 MiB"):
        read_matrix(npy_bytes(np.eye(81)), "big.npy", max_bytes=1000)


@pytest.mark.parametrize("matrix, message", [
    (np.eye(80), "side 80 is not a perfect square"),
    (np.ones((9, 16)), "must be a square matrix"),
    (np.ones((2, 9, 9)), "2-D k² × k² matrix; this one has shape \\(2, 9, 9\\)"),
    (np.where(np.eye(9) > 0, np.nan, 0.0), "NaN or infinite"),
    (np.triu(np.ones((9, 9))), "must be symmetric"),
    (np.zeros((9, 9)), "positive total variance"),
    (-np.eye(9), "add up to -9"),
])
def test_bad_matrices_are_named(matrix, message):
    with pytest.raises(ValueError, match=message):
        inspect_covariance(torch.as_tensor(matrix))


def test_psd_matrix_reports_its_kernel_size_and_spectrum():
    report = inspect_covariance(gaussian(7, 2.0))
    assert report.psd and report.kernel_size == 7
    assert report.min_eigenvalue >= -1e-12 and report.max_eigenvalue > 1
    assert "49 × 49 covariance of 7 × 7 filters" in report.describe()


def test_non_psd_matrix_is_reported_and_projected_with_the_change_measured():
    S = gaussian(5, 1.5)
    w, V = torch.linalg.eigh(S)
    w[0] = -0.5
    bad = (V * w) @ V.T
    bad = (bad + bad.T) / 2
    report = inspect_covariance(bad)
    assert not report.psd and report.min_eigenvalue == pytest.approx(-0.5)
    P, change = projected(report)
    assert is_psd(P)
    assert torch.allclose(P, (V * w.clamp_min(0)) @ V.T, atol=1e-10)  # only the negative direction moves
    assert change == pytest.approx(0.5 / torch.linalg.matrix_norm(bad).item(), rel=1e-6)
