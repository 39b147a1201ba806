"""Argument parsing for the command line: the parser class that turns argparse's errors into
UsageError, the argument types, and the options several commands share. Option tables are data: a
sequence of (flags, keyword arguments) that add_options hands to add_argument, with `Later` for a value
read when the parser is built (an init scheme or dataset registered since import counts). A training
setting's option is made from its TrainConfig field's Setting (setting_option): flag, type, range,
default and help in one place."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Callable, Sequence

from .. import models
from ..matrix_files import MATRIX_SUFFIXES
from ..train.config import Setting, TrainConfig, settings_of


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit code 2."""


def shown_default(value) -> str:
    """A default as it would be typed on the command line: lists comma-separated ("none" when empty),
    numbers without a trailing .0."""
    if isinstance(value, (list, tuple)):
        return ",".join(shown_default(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that ends every option's text with its default, "(default: X)", where the option takes a
    value, has a default other than None and its help does not already say "default X"."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or action.nargs == 0 or action.default is None
                or action.default is argparse.SUPPRESS):
            return text
        shown = shown_default(action.default)
        if re.search(rf"\bdefault:? {re.escape(shown)}\b", text):
            return text
        return f"{text} (default: {shown.replace('%', '%%')})".strip()


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of printing usage and exiting, and whose help
    shows every option's default (DefaultsFormatter); its sub-parsers are of the same class."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(message)


# ---------------------------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------------------------


def run_ref(text: str) -> int | str:
    """A stored run's id, or "example" (the bundled example network)."""
    if text.strip() == "example":
        return "example"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a run id or 'example', got {text!r}") from None


def learned_ref(text: str) -> int | str | tuple[str, str] | Path:
    """Where learned covariances come from: a stored run's id, "example", "set:NAME" (a saved
    covariance set) or a matrix file (depth x k^2 x k^2, or one k^2 x k^2 matrix)."""
    text = text.strip()
    if text.startswith("set:") and text[4:].strip():
        return ("set", text[4:].strip())
    if Path(text).suffix.lower() in MATRIX_SUFFIXES:
        return Path(text)
    try:
        return run_ref(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a run id, 'example', set:NAME or a {'/'.join(MATRIX_SUFFIXES)} file, got {text!r}") from None


def number_in(low: float, high: float | None = None, *, above: bool = False, whole: bool = False):
    """An argument type: a finite number from `low` (excluded with `above`) to `high` (None: no
    bound), an int with `whole`; anything else (nan, inf, out of range, not a number) is refused
    naming the range. span(...) says the same range for the help."""
    kind = "a whole number" if whole else "a number"

    def parse(text: str):
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            value = None
        if (value is None or not math.isfinite(value) or (value <= low if above else value < low)
                or (high is not None and value > high)):
            raise argparse.ArgumentTypeError(f"expected {kind} {span(low, high, above=above)}, got {text!r}")
        return value

    return parse


def span(low: float, high: float | None = None, *, above: bool = False) -> str:
    """'> 0 and <= 1024', '>= 1': a range as number_in reads it, for help and messages."""
    return f"{'>' if above else '>='} {low:g}" + ("" if high is None else f" and <= {high:g}")


def int_list(text: str) -> list[int]:
    """"0,1,2" or "0-4" (inclusive) -> list of ints."""
    try:
        if "-" in text.strip("-") and "," not in text:
            lo, hi = (int(part) for part in text.split("-"))
            if hi < lo:
                raise ValueError
            return list(range(lo, hi + 1))
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0,1,2 or 0-4, got {text!r}") from None


def float_list(text: str) -> list[float]:
    """"0.5,1,1.5" -> [0.5, 1.0, 1.5]."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers like 0.5,1,1.5, got {text!r}")
    return values


def name_list(text: str) -> list[str]:
    """"default,gaussian" -> ["default", "gaussian"]."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names, e.g. default,gaussian")
    return names


def key_value(text: str) -> tuple[str, object]:
    """"KEY=VALUE" -> (KEY, VALUE read as JSON, else the text as given)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


# ---------------------------------------------------------------------------------------------
# Option tables and shared options
# ---------------------------------------------------------------------------------------------


class Later:
    """A keyword argument of an option table computed when the parser is built."""

    def __init__(self, compute: Callable[[], object]):
        self.compute = compute


Option = tuple[str | tuple[str, ...], dict]


def add_options(parser, options: Sequence[Option]) -> None:
    """add_argument for each (flags, keyword arguments) of `options`, in order; each option gets its
    own copy of mutable defaults, and Later values are computed now."""
    for flags, kwargs in options:
        kwargs = {key: value.compute() if isinstance(value, Later) else copy.deepcopy(value)
                  for key, value in kwargs.items()}
        parser.add_argument(*((flags,) if isinstance(flags, str) else flags), **kwargs)


def exclusive(options: Sequence[Option]) -> Callable[[argparse.ArgumentParser], None]:
    """A step of add_command: the options as a mutually exclusive group."""
    return lambda parser: add_options(parser.add_mutually_exclusive_group(), options)


def described(text: str) -> Callable[[argparse.ArgumentParser], None]:
    """A step of add_command: the command's description, shown by its --help under the usage."""
    def describe(parser: argparse.ArgumentParser) -> None:
        parser.description = text
    return describe


def add_command(sub, name: str, help: str, command: Callable | None, *steps) -> argparse.ArgumentParser:
    """Sub-parser `name` of `sub` running `command` (None: its own sub-parsers name one), built by `steps`
    in order: each an option table, or a function of the parser (add_arch, exclusive(...))."""
    parser = sub.add_parser(name, help=help)
    for step in steps:
        if callable(step):
            step(parser)
        else:
            add_options(parser, step)
    if command is not None:
        parser.set_defaults(func=command)
    return parser


def dataset_param(help: str) -> Option:
    """--dataset-param KEY=VALUE (repeatable)."""
    return ("--dataset-param", dict(action="append", type=key_value, default=[], metavar="KEY=VALUE", help=help))


def json_path(help: str) -> Option:
    """--json PATH: also write the result as JSON."""
    return ("--json", dict(default=None, metavar="PATH", help=help))


def setting_type(name: str, described: Setting) -> Callable[[str], object]:
    """The argparse type of TrainConfig field `name`: the text read as the Setting's type (a bad one:
    argparse's "invalid int value"), then checked against its range (out of range: one line naming
    the range, exit 2)."""
    def parse(text: str):
        value = described.type(text)
        try:
            return described.check(name, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = described.type.__name__
    return parse


def setting_help(described: Setting, help: str | None = None) -> str:
    """A Setting's help (or `help`) with its range, for argparse (a % doubled)."""
    text, values = help or described.help, described.range_text()
    if values and not described.choices:
        text += f"; in {values}"
    return text.replace("%", "%%")


def setting_option(name: str, **overrides) -> Option:
    """The option (its Setting.flag) for TrainConfig field `name`, from its Setting: type and range
    (setting_type), TrainConfig's default, help with the range (read when the parser is built: a cap
    from the environment counts), choices; a switch for a bool. `overrides` replace any of these."""
    described = settings_of(TrainConfig)[name]
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    help = overrides.pop("help", None)
    kwargs = {"help": Later(lambda: setting_help(described, help))}
    if described.type is bool:
        kwargs["action"] = "store_true"
    else:
        kwargs.update(type=setting_type(name, described), default=field.default)
        if described.choices:
            kwargs["choices"] = described.choices
    return (described.flag, {**kwargs, **overrides})


def setting_dest(flag: str) -> str:
    """The attribute argparse stores option `flag` under."""
    return flag[2:].replace("-", "_")


DB: Option = ("--db", dict(default=None, help="run store file (default $CONVCOV_HOME/runs.db)"))
QUIET: Option = ("--quiet", dict(action="store_true", help="no progress output"))
OUT_FILE: Option = ("--out", dict(required=True, help="file ending in .npy, .pt or .safetensors"))
SEED: Option = ("--seed", dict(type=int, default=0, help="random seed (the same seed gives the same result)"))


def add_arch(parser: argparse.ArgumentParser) -> None:
    """--arch: a checkpoint's architecture."""
    parser.add_argument("--arch", choices=sorted(set(models.CHECKPOINT_ARCHITECTURES.values())),
                        default="convmixer",
                        help="the checkpoint's architecture (a ConvMixer's sizes are read from the file)")
