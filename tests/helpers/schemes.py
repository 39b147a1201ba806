"""Where each front end offers init schemes, read the way a visitor or a shell would meet them."""

from __future__ import annotations

from convcov_app import lab, labels
from convcov_app import sweeps as sweeps_page
from convcov_core import frequency, init, sweep
from convcov_core.cli import build_parser
from convcov_core.train import TrainConfig


def cli_option(command: str, flag: str):
    """The argparse action of `convcov COMMAND FLAG`, built as the CLI builds it now."""
    commands = build_parser()._subparsers._group_actions[0].choices
    return next(a for a in commands[command]._actions if flag in a.option_strings)


def _sweeps_take(name: str) -> bool:
    """Whether a sweep grid with `name` validates and expands to trials of it."""
    grid = sweep.Sweep("registry", TrainConfig(model="convmixer-8/2", kernel_size=5), {}, ["default", name], [0])
    try:
        return any(t.init == name for t in grid.validate().trials())
    except ValueError:
        return False


def offered(name: str) -> dict[str, bool]:
    """{front end: whether it offers the scheme `name`} for the front ends that list filter schemes
    without a source: the CLI's sample and compare, the gallery, the Lab (a ConvMixer), Sweeps
    (page and grid) and the Frequency View."""
    return {
        "cli sample --scheme": name in cli_option("sample", "--scheme").choices,
        "cli compare --inits": name in cli_option("compare", "--inits").help,
        "cli frequency --source": name in cli_option("frequency", "--source").choices,
        "gallery": name in labels.scheme_names(include_learned=False),
        "lab": name in lab.offered_schemes(True, False, False),
        "sweeps page": name in sweeps_page.scheme_by_label().values(),
        "sweep grid": _sweeps_take(name),
        "frequency view": name in labels.frequency_sources().values() and name in frequency.frequency_sources(),
        "training config": TrainConfig(init=name).validate().init == name,
        "registry": name in init.scheme_names("depthwise", with_source=False),
    }
