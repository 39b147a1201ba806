"""What a sweep is: a base training config, axes over its fields, the init schemes (the first one is
the reference every other is paired against) and the seeds, expanded in full to trials.

A trial is one training run. Its key is a hash of its canonical config (trial_key), so a trial run
once is found again by any sweep that contains it, and a sweep that was stopped resumes where it
stood: the run store keeps each result under its key (RunStore.save_once). The canonical config
(TrainConfig.canonical_dict) leaves out a field added since keys were first stored while it holds the
value runs trained with before it existed, so adding a field to TrainConfig keeps every stored key.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass

from .. import settings
from ..init import needing_source
from ..train import TrainConfig
from ..train.config import canonical, settings_of

#: TrainConfig fields that may be axes (Setting.axis), in field order; the others are not: seeds and
#: schemes have lists of their own, the rest say where or how a run executes, not what it computes.
AXES = tuple(name for name, described in settings_of(TrainConfig).items() if described.axis)
NOT_AXES = tuple(name for name in settings_of(TrainConfig) if name not in AXES)
#: Fields left out of a trial's key (Setting.in_key false: how many threads ran it, whether its
#: weights were kept, where its data was read from), and n_covariances (the covariances count by
#: their bytes).
_NOT_IN_KEY = (*(name for name, described in settings_of(TrainConfig).items() if not described.in_key),
               "n_covariances")
_NAME = re.compile(r"[A-Za-z0-9][\w.\-]{0,99}")


def trial_key(config: TrainConfig) -> str:
    """"trial:" + sha256 of the config's canonical fields (learned covariances by their bytes), so two
    equal configs share a key; threads, keep_state_dict and data_root do not count, nor a field added
    since keys were first stored while it holds its Setting.before."""
    not_in_key = {*_NOT_IN_KEY, *(name for name, described in settings_of(type(config)).items()
                                  if not described.in_key)}
    payload = {k: v for k, v in config.canonical_dict().items() if k not in not_in_key}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode())
    for cov in config.covariances or []:
        digest.update(cov.double().contiguous().numpy().tobytes())
    return "trial:" + digest.hexdigest()[:32]


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: its config, its key, and its cell (the axes' values, in axis order)."""

    key: str
    config: TrainConfig
    cell: tuple

    @property
    def init(self) -> str:
        return self.config.init

    @property
    def seed(self) -> int:
        return self.config.seed


@dataclass
class Sweep:
    """A base config, axes {TrainConfig field: values}, init schemes (the first is the reference)
    and seeds; n_cells = product of the axes' lengths, n_trials = n_cells x schemes x seeds."""

    name: str
    base: TrainConfig
    axes: dict
    inits: list
    seeds: list

    @property
    def n_cells(self) -> int:
        return math.prod(len(values) for values in self.axes.values())

    @property
    def n_trials(self) -> int:
        return self.n_cells * len(self.inits) * len(self.seeds)

    @property
    def reference(self) -> str:
        return self.inits[0]

    def validate(self) -> "Sweep":
        """ValueError naming the first thing wrong: the name, an unknown or empty axis, a repeated
        value, scheme or seed, more trials than settings.max_sweep_trials(), or a config that
        TrainConfig.validate refuses; nothing is expanded before the count is known."""
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"sweep name {self.name!r}: use 1-100 letters, digits, '.', '-' or '_', "
                             "starting with a letter or digit")
        for axis, values in self.axes.items():
            if axis not in AXES:
                raise ValueError(f"unknown sweep axis {axis!r}; an axis is one of: {', '.join(AXES)}")
            _check_list(list(values), f"axis {axis}")
        _check_list(self.inits, "the init schemes")
        if sourced := needing_source(self.inits):
            raise ValueError(f"sweeps take schemes that need no source; the {sourced[0]} scheme needs covariances "
                             "that a sweep does not store (race it with compare --learned-from)")
        _check_list(self.seeds, "the seeds")
        cap = settings.max_sweep_trials()
        if self.n_trials > cap:
            raise ValueError(f"this grid has {self.n_trials:,} trials ({self.n_cells:,} cells x {len(self.inits)} "
                             f"scheme(s) x {len(self.seeds):,} seed(s)), more than the {cap:,} a sweep may have; "
                             "use fewer values or set CONVCOV_MAX_SWEEP_TRIALS")
        for axis, values in self.axes.items():
            for value in values:
                _check_value(self.base, axis, value)
        for init in self.inits:
            self.base.replace(init=init).validate()
        for seed in self.seeds:
            self.base.replace(seed=seed).validate()
        return self

    def cells(self) -> list[tuple]:
        """Every combination of the axes' values, each a tuple in axis order (() without axes)."""
        cells = [()]
        for values in self.axes.values():
            cells = [cell + (value,) for cell in cells for value in values]
        return cells

    def trials(self) -> list[Trial]:
        """Every trial, seed by seed (each seed's round covers every cell and scheme, so paired
        differences exist early), each config validated."""
        out = []
        for seed in self.seeds:
            for cell in self.cells():
                cell_config = self.base.replace(**dict(zip(self.axes, cell)), seed=seed)
                for init in self.inits:
                    config = cell_config.replace(init=init).validate()
                    out.append(Trial(trial_key(config), config, cell))
        return out

    def to_dict(self) -> dict:
        """JSON-safe spec (learned covariances of the base config are not kept: see TrainConfig.to_dict)."""
        return {"name": self.name, "base": self.base.to_dict(), "axes": {k: list(v) for k, v in self.axes.items()},
                "inits": list(self.inits), "seeds": list(self.seeds)}

    @staticmethod
    def canonical_spec(spec: dict) -> str:
        """A spec (to_dict(), as stored now or by an older version) as text that is equal for two specs of
        the same grid: the base config canonical (TrainConfig.canonical_dict), the axes in their order."""
        return json.dumps({**spec, "base": canonical(spec["base"])})

    @classmethod
    def from_dict(cls, d: dict) -> "Sweep":
        return cls(name=d["name"], base=TrainConfig.from_dict(d["base"]), axes=dict(d["axes"]),
                   inits=list(d["inits"]), seeds=list(d["seeds"]))


def _check_list(values: list, what: str) -> None:
    if not values:
        raise ValueError(f"{what} has no values")
    repeated = sorted(str(v) for v, n in Counter(values).items() if n > 1)
    if repeated:
        raise ValueError(f"{what} lists {', '.join(repeated)} more than once")


def _check_value(base: TrainConfig, axis: str, value) -> None:
    """ValueError naming the axis unless base with axis = value is a valid config (kernel sizes odd
    and at most settings.max_kernel_size())."""
    if axis == "kernel_size" and value is not None:
        cap = settings.max_kernel_size()
        if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value % 2 == 0 or value > cap:
            raise ValueError(f"axis kernel_size: {value!r} is not an odd kernel size from 1 to {cap} "
                             "(filters are centred on a pixel; CONVCOV_MAX_KERNEL sets the cap)")
    try:
        base.replace(**{axis: value}).validate()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"axis {axis}: {exc}") from None


def _fields_of(kind: type) -> tuple:
    return tuple(name for name, described in settings_of(TrainConfig).items() if described.type is kind)


#: How parse_values reads a field's values: by its Setting's type.
_INT_FIELDS = _fields_of(int)
_FLOAT_FIELDS = _fields_of(float)
_BOOL_FIELDS = _fields_of(bool)
_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def parse_values(field: str, text: str) -> list:
    """A comma list of values for `field` as typed ("5,9,15"; whole-number fields also take ranges
    "0-9"; true/false for switches), each converted to the field's type; ValueError otherwise."""
    items = [item.strip() for item in str(text).split(",")]
    if not text.strip() or "" in items:
        raise ValueError(f"{field}: {text!r} is not a comma list of values")
    out = []
    for item in items:
        out.extend(_parse_one(field, item))
    return out


def _parse_one(field: str, item: str) -> list:
    try:
        if field in _INT_FIELDS:
            if m := re.fullmatch(r"(\d+)-(\d+)", item):
                low, high = int(m[1]), int(m[2])
                if high < low or high - low >= 100_000:
                    raise ValueError
                return list(range(low, high + 1))
            return [int(item)]
        if field in _FLOAT_FIELDS:
            return [float(item)]
        if field in _BOOL_FIELDS:
            return [_BOOL_WORDS[item.lower()]]
    except (ValueError, KeyError):
        kind = ("true or false" if field in _BOOL_FIELDS else
                "whole numbers or ranges such as 0-9" if field in _INT_FIELDS else "numbers")
        raise ValueError(f"{field}: {item!r} is not one of the values it takes ({kind})") from None
    return [item]
