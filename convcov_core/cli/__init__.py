"""Command line: `python -m convcov_core ...` or `convcov ...`.

    compare     train inits against each other over seeds; table of mean ± std and paired differences
    covariance  write the closed-form Gaussian covariance of k x k filters (.npy, .pt or .safetensors)
    sample      draw filters from an init scheme or a covariance file
    learned     learned covariances of a trained network (the bundled example, a stored run, a
                checkpoint or a covariance file): fitted sigma per layer; transfer them, write them,
                save them for the Lab
    cnfa        the Feature Ansatz check: r(patch-AGOP, W^T W) per conv layer, trained vs at init, of
                a small CNN trained here, a stored run with weights or a checkpoint
    frequency   filters in frequency: effective sizes and half-max frequency per layer, of an init
                scheme, a stored run or a checkpoint (its trained filters or its learned covariances)
    runs        list | show | export | delete stored runs
    download    fetch a torchvision dataset into the data root
    reproduce   test the papers' claims with small fixed experiments; write a report
    regimes     where does the Gaussian init help? a resumable map over patch size, width, sigma
                schedule, training length and data; writes a report
    rfm         ConvRFM and Deep ConvRFM (seed 001) vs the base Laplace kernel and the Feature Ansatz CNN
                over noise levels and seeds
    sweep       many seeded runs over a grid (kernel size, depth, epochs, ...), on this machine or a Ray
                cluster: run | resume | show | list | delete

Bad arguments, and running out of memory, print one line on stderr and exit with code 2.

The package: args (argument types, option tables, shared options), output (tables, comparison text,
terminal progress, JSON files), sources (run store, bundled example, covariance files), training
(compare, runs), reproduce, sweep and analysis (learned, cnfa, frequency, covariance, sample, download); each
command module registers its own sub-parsers (add_parsers). This module builds the parser and runs a
command: main.
"""

from __future__ import annotations

import argparse
import re
import sys

import torch

from .. import settings
from . import analysis, reproduce, rfm, sweep, training
from .args import Parser, UsageError
from .output import TerminalProgress, format_comparison, format_table

__all__ = ["COMMANDS", "TerminalProgress", "UsageError", "build_parser", "format_comparison", "format_table",
           "main"]

# The commands in the order `convcov --help` lists them, and the module that registers each.
COMMANDS = {"compare": training, "covariance": analysis, "sample": analysis, "learned": analysis,
            "cnfa": analysis, "frequency": analysis, "reproduce": reproduce, "regimes": reproduce, "rfm": rfm,
            "sweep": sweep, "download": analysis, "runs": training}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="convcov", description="Covariance structure of convolutional filters.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parsers(sub, [name])
    return parser


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _check_kernel_size_cap(args) -> None:
    """ValueError for an even --kernel-size (filters are centred on a pixel; PyTorch pads an even
    "same" convolution unevenly) or one above settings.max_kernel_size(): a k x k filter's covariance
    is a k^2 x k^2 matrix, so k = 201 alone would be a 13 GB float64 file. `sweep run` may give a list."""
    sizes, cap = getattr(args, "kernel_size", None), settings.max_kernel_size()
    for k in sizes if isinstance(sizes, list) else [sizes]:
        if k is not None and k > 0 and k % 2 == 0:
            raise ValueError(f"--kernel-size {k} is even: convcov's filters are centred on a pixel, so the kernel "
                             f"size must be odd (try {k - 1} or {k + 1})")
        if k is not None and k > cap:
            raise ValueError(f"--kernel-size {k} is above {cap}, the largest kernel size convcov accepts "
                             f"(a covariance of {k} x {k} filters is a {k * k:,} x {k * k:,} matrix); "
                             "set CONVCOV_MAX_KERNEL to allow more")


_ALLOCATION = re.compile(r"allocate (\d+) bytes|allocate ([\d.]+ [KMGT]i?B)", re.IGNORECASE)
_SIZE_FLAGS = ("n", "width", "batch_size", "kernel_size", "images")


def _out_of_memory(exc: BaseException, args) -> str | None:
    """One line for an allocation that failed (MemoryError, PyTorch's CPU or CUDA allocator), with the
    size asked for and the size flags this command has; None for any other error."""
    text = str(exc)
    if not (isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or "can't allocate memory" in text):
        return None
    found = _ALLOCATION.search(text)
    asked = "" if found is None else (f": tried to allocate {int(found.group(1)) / 1e9:,.1f} GB"
                                      if found.group(1) else f": tried to allocate {found.group(2)}")
    flags = [f"--{name.replace('_', '-')}" for name in _SIZE_FLAGS if getattr(args, name, None) is not None]
    return f"not enough memory{asked}" + (f"; try a smaller {' / '.join(flags)}" if flags else "")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 failure, 2 bad arguments or not enough memory,
    130 interrupted)."""
    args = None
    try:
        args = build_parser().parse_args(argv)
        _check_kernel_size_cap(args)
        return args.func(args)
    except (UsageError, ValueError, OSError) as exc:
        print(f"convcov: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nconvcov: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if settings.debug():
            raise
        if (message := _out_of_memory(exc, args)) is not None:
            print(f"convcov: error: {message}", file=sys.stderr)
            return 2
        print(f"convcov: failed: {type(exc).__name__}: {_one_line(exc)} (set CONVCOV_DEBUG=1 for details)",
              file=sys.stderr)
        return 1
