"""Filters per second: convcov's samplers against torch.distributions.MultivariateNormal.

    python benchmarks/sampling.py            # k = 9, 31, 51 (and 101 for ours), 10,000 filters
    python benchmarks/sampling.py --quick    # tiny smoke run

All methods sample N(0, S) with S = gaussian(k, sigma) and include their factorization time (a fresh
covariance every call, as when a user moves a slider). MultivariateNormal needs a Cholesky factor of the
dense matrix (sigma = 1.5 keeps S well enough conditioned for it at k = 51); each precision is compared
with its own: float32 with float32, float64 with float64. At float64 our time is mostly drawing the
normals (torch.randn draws float64 about 4x slower than float32 on CPU).
"""

from __future__ import annotations

import argparse
import time

import torch

from convcov_core.covariance import gaussian
from convcov_core.sampling import sample_filters


def best_time(fn, repeats: int, patience_s: float = 5.0) -> float:
    """Minimum wall time of up to `repeats` calls (the least disturbed by other work on the
    machine); a call slower than patience_s is not repeated (it is far from any crossover)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if times[-1] > patience_s:
            break
    return min(times)


def methods(k: int, sigma: float, n: int, with_dense: bool):
    """name -> zero-argument callable drawing n filters."""
    out = {
        "kronecker f32": lambda: sample_filters(gaussian(k, sigma, structured=True), n),
        "kronecker f64": lambda: sample_filters(gaussian(k, sigma, structured=True), n, dtype=torch.float64),
    }
    if with_dense:
        out["dense f64 (ours)"] = lambda: sample_filters(gaussian(k, sigma), n, dtype=torch.float64)
        for bits, dtype in (("32", torch.float32), ("64", torch.float64)):
            out[f"MultivariateNormal f{bits}"] = lambda dtype=dtype: torch.distributions.MultivariateNormal(
                torch.zeros(k * k, dtype=dtype), covariance_matrix=gaussian(k, sigma).to(dtype)
            ).sample((n,))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    n = 200 if args.quick else 10_000
    sizes = [(5, True), (9, True)] if args.quick else [(9, True), (31, True), (51, True), (101, False)]
    sigma = 1.5
    print(f"device: cpu, threads: {torch.get_num_threads()}, filters per call: {n}, sigma: {sigma}")
    print(f"{'k':>4} {'method':<24} {'seconds':>9} {'filters/s':>12} {'vs MVN':>8}  (MVN of the same precision)")
    ratios = {}
    for k, with_dense in sizes:
        times = {name: best_time(fn, args.repeats) for name, fn in methods(k, sigma, n, with_dense).items()}
        for name, t in times.items():
            mvn = times.get("MultivariateNormal " + ("f64" if "f64" in name else "f32"))
            ratio = f"{mvn / t:7.1f}x" if mvn else "      -"
            print(f"{k:>4} {name:<24} {t:9.4f} {n / t:12,.0f} {ratio:>8}")
        if with_dense:
            ratios[k] = tuple(times[f"MultivariateNormal f{b}"] / times[f"kronecker f{b}"] for b in ("32", "64"))
    summary = ", ".join(f"{r32:.0f}x / {r64:.0f}x at k={k}" for k, (r32, r64) in ratios.items())
    print(f"summary: Kronecker sampling vs dense MultivariateNormal, float32 (the default) / float64: "
          f"{summary}")


if __name__ == "__main__":
    main()
