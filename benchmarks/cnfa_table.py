"""The CNFA table: r(patch-AGOP, CNFM) per conv layer of a small CNN trained on an embedded dataset,
trained vs the same network at initialization (the Feature Ansatz page's analysis, from the shell).

    python benchmarks/cnfa_table.py                       # the page's default: mnist5k, 2 epochs
    python benchmarks/cnfa_table.py --epochs 4 --init default --images 256
    python benchmarks/cnfa_table.py --precision bf16      # why the page trains in fp32

Prints the setup, the test accuracy, the wall time, and a Markdown table with, per layer, r after
training, r at init and r(CNFM at init, CNFM trained) (how far training moved the filters).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from convcov_core import feature_ansatz as fa


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k", choices=fa.CNN_DATASETS)
    parser.add_argument("--noise", type=float, default=0.5, help="noise std of the noisy datasets")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--kernel", type=int, default=None,
                        help="every layer's kernel size (default: 5 x 5, then 3 x 3)")
    parser.add_argument("--init", choices=("small", "default"), default="small",
                        help="small: N(0, 0.005²) first layer, N(0, 0.01²) after (seed 001); "
                             "default: PyTorch's")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=128, help="test images for the AGOP")
    parser.add_argument("--outputs", choices=("all", "predicted"), default="all")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="training precision (the page: fp32)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    config = fa.cnn_config(args.dataset, noise=args.noise, layers=args.layers, width=args.width,
                           kernel_size=args.kernel, epochs=args.epochs, batch_size=args.batch, lr=args.lr,
                           seed=args.seed).replace(precision=args.precision)
    started = time.perf_counter()
    pair = fa.train_cnn(config, small_init=args.init == "small")
    trained_s = time.perf_counter() - started
    started = time.perf_counter()
    comparison = fa.compare_cnfa(pair, fa.analysis_images(config, args.images), outputs=args.outputs)
    agop_s = time.perf_counter() - started

    print(f"setup: {pair.label}; {args.epochs} epoch(s), batch {config.batch_size}, AdamW lr "
          f"{args.lr} one-cycle, seed {args.seed}; AGOP of {args.outputs} outputs on "
          f"{args.images} test images; {args.precision}; {torch.get_num_threads()} CPU thread(s)")
    print(f"test accuracy {pair.test_acc:.1f}%, training {trained_s:.1f} s, CNFA (trained + init) "
          f"{agop_s:.1f} s")
    print()
    print("| layer | filters | r trained | r at init | r(CNFM init, CNFM trained) |")
    print("|---|---|---|---|---|")
    for row in comparison.table():
        print(f"| {row['layer']} | {row['filters']} | {row['r trained']:.3f} | {row['r at init']:.3f} | "
              f"{row['r(CNFM init, CNFM trained)']:.3f} |")


if __name__ == "__main__":
    main()
