"""Peak memory and time of ConvRFM's chunked patch-AGOP (rfm.kernel_agop) versus unfolding every patch.

The unfolding approach is the obvious alternative and the seed's workaround: unfold every q x q
patch of every image (n x P x c q^2 floats), make the AGOP points' patches leaf tensors, compute the
kernel predictor f(x) = alpha^T K_M(X, x) on all positions at once and backprop to the patches, one
class at a time. kernel_agop never unfolds: it takes R^T x_p by convolution, a band of rows at a
time, and the gradient in closed form (rfm/kernel.py). Both run on the same images, M, bandwidth and
alpha, and their AGOPs are compared.

Memory: each method runs in a fresh subprocess (CPU); the number is the growth of the process's peak
resident set size (ru_maxrss) during the call, measured after the inputs are built and a call on two
images has warmed up the kernels. Time: wall clock of that call.

    python benchmarks/rfm_memory.py            # full run (about a minute on 2 CPU cores)
    python benchmarks/rfm_memory.py --quick    # tiny smoke run
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convcov_core.rfm import kernel_agop, patch_metric  # noqa: E402

METHODS = ("kernel_agop", "unfold")


def configs(quick: bool) -> dict:
    """Images n x c x H x W, patch size q, classes C, AGOP points m."""
    if quick:
        return dict(n=24, c=1, size=10, q=3, classes=2, points=12)
    return dict(n=300, c=1, size=28, q=5, classes=10, points=300)


def build(config: dict):
    """Images, a rank-deficient M (as AGOPs are), its metric and alpha, all seeded."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(config["n"], config["c"], config["size"], config["size"], generator=g)
    d = config["c"] * config["q"] ** 2
    A = torch.randn(d, d // 2, generator=g, dtype=torch.float64)
    metric = patch_metric(A @ A.T, X, config["q"])
    alpha = torch.randn(config["n"], config["classes"], generator=g)
    return X, metric, alpha


def unfolded_agop(metric, X: torch.Tensor, alpha: torch.Tensor, n_points: int) -> torch.Tensor:
    """Patch-AGOP by unfolding every patch of every image and autograd to the points' patches."""
    q, R = metric.patch_size, metric.factor
    patches = F.unfold(X, q, padding=q // 2).transpose(1, 2)  # (n, P, d): every patch of every image
    points = patches[:n_points].clone().requires_grad_(True)
    u, v = (patches @ R).transpose(0, 1), (points @ R).transpose(0, 1)  # (P, n, r), (P, m, r)
    d2 = v.pow(2).sum(-1)[:, :, None] + u.pow(2).sum(-1)[:, None, :] - 2 * v @ u.transpose(1, 2)
    self_pair = torch.eye(n_points, len(X), dtype=torch.bool)  # no gradient at distance 0 (as kernel_agop)
    d = torch.where(self_pair, 1.0, d2.clamp_min(1e-30)).sqrt()
    k = torch.where(self_pair, 1.0, torch.exp(-d / metric.bandwidth))
    f = k.mean(0) @ alpha  # (m, C)
    total = torch.zeros(R.shape[0], R.shape[0], dtype=torch.float64)
    for c in range(f.shape[1]):
        (grad,) = torch.autograd.grad(f[:, c].sum(), points, retain_graph=c + 1 < f.shape[1])
        g = grad.reshape(-1, grad.shape[-1]).double()
        total += g.T @ g
    return total / n_points


def run_method(method: str, metric, X, alpha, n_points: int) -> torch.Tensor:
    if method == "kernel_agop":
        return kernel_agop(metric, X, alpha, n_points)
    return unfolded_agop(metric, X, alpha, n_points)


def measure(method: str, quick: bool, save: Path) -> dict:
    """Peak extra memory (bytes) and time (s) of one method in this process; saves its AGOP."""
    config = configs(quick)
    X, metric, alpha = build(config)
    run_method(method, metric, X[:2], alpha[:2], 2)  # warm up the kernels
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    agop = run_method(method, metric, X, alpha, config["points"])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    torch.save(agop, save)
    return {"peak_bytes": peak, "seconds": seconds}


def measure_in_subprocess(method: str, quick: bool, save: Path) -> dict:
    command = [sys.executable, __file__, "--worker", method, "--save", str(save)] + (["--quick"] if quick else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker for {method} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny images (smoke run)")
    parser.add_argument("--worker", default=None, choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.worker:
        print(json.dumps(measure(args.worker, args.quick, args.save)))
        return 0
    config = configs(args.quick)
    print(f"patch-AGOP of a Laplace-ConvRFM predictor: {config['n']} images {config['c']} x {config['size']} x "
          f"{config['size']}, {config['q']} x {config['q']} patches, {config['classes']} classes, "
          f"{config['points']} AGOP points; memory = growth of peak RSS, one fresh process per method")
    results, agops = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for method in METHODS:
            save = Path(scratch) / f"{method}.pt"
            results[method] = measure_in_subprocess(method, args.quick, save)
            agops[method] = torch.load(save, weights_only=True)
            print(f"{method:<12}{results[method]['peak_bytes'] / 2**20:>10.1f} MiB{results[method]['seconds']:>9.2f} s")
    difference = float((agops["kernel_agop"] - agops["unfold"]).abs().max() / agops["unfold"].abs().max())
    memory = results["unfold"]["peak_bytes"] / max(results["kernel_agop"]["peak_bytes"], 1)
    speed = results["unfold"]["seconds"] / max(results["kernel_agop"]["seconds"], 1e-9)
    pace = f"{speed:.1f}x faster" if speed >= 1 else f"{1 / speed:.1f}x slower"
    print(f"summary: kernel_agop vs unfolding every patch -- {memory:.1f}x less peak memory, {pace} "
          f"(max rel. diff {difference:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
