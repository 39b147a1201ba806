"""One description per training setting: each TrainConfig field's Setting (type, range, help, sweep
axis, compare flag) is what validate checks, what compare and `sweep run` offer, what a sweep axis
is read as, and the pages offer no value outside it."""

import ast
import dataclasses
import math
import re
from pathlib import Path

import pytest

from convcov_app import lab, lab_form, labels
from convcov_app import sweeps as sweeps_page
from convcov_core import settings
from convcov_core.cli import build_parser, main
from convcov_core.cli.sweep import AXIS_FLAGS
from convcov_core.cli.training import BY_HAND, COMPARE_OPTIONS, SETTING_FLAGS
from convcov_core.sweep import AXES, parse_values
from convcov_core.train import TrainConfig
from convcov_core.train.config import KEYED_FROM_THE_START, NO_BEFORE, settings_of

REPO = Path(__file__).resolve().parents[1]
SETTINGS = settings_of(TrainConfig)
NUMBERS = {name: s for name, s in SETTINGS.items() if s.type in (int, float) and s.low is not None}


def test_every_field_has_a_setting_with_help_and_a_flag_of_compare():
    assert list(SETTINGS) == [f.name for f in dataclasses.fields(TrainConfig)]
    flags = [s.flag for s in SETTINGS.values()]
    assert None not in flags and len(set(flags)) == len(flags)
    compare_flags = {flags for flags, _ in COMPARE_OPTIONS}
    assert {name: s.flag for name, s in SETTINGS.items() if s.flag not in compare_flags} == {}
    assert all(s.help for s in SETTINGS.values())
    assert set(BY_HAND) | set(SETTING_FLAGS) == set(SETTINGS)


def test_a_field_added_after_the_first_keys_says_how_runs_trained_before_it():
    """KEYED_FROM_THE_START is frozen: every field not in it needs a Setting.before (trial keys)."""
    later = [name for name in TrainConfig().to_dict() if name not in KEYED_FROM_THE_START]
    assert {name: SETTINGS[name].before for name in later if SETTINGS[name].before is NO_BEFORE} == {}


def _outside(s) -> list:
    """Values just outside a Setting's range (and, for floats, not finite)."""
    high = s.upper()
    step = 1 if s.type is int else 1e-9 * max(1.0, abs(high or 1))
    values = [s.low if s.low_open else s.low - step]
    if high is not None:
        values.append(high if s.high_open else high + step)
    if s.type is float:
        values += [math.nan, math.inf]
    return values


def _inside(s) -> list:
    high = s.upper()
    values = [] if s.low_open else [s.low]
    if high is not None and not s.high_open:
        values.append(high)
    return [s.type(v) for v in values]


@pytest.mark.parametrize("name", list(NUMBERS))
def test_validate_refuses_what_is_outside_a_settings_range_and_names_the_range(name):
    s, base = NUMBERS[name], TrainConfig()
    for value in _inside(s):
        assert base.replace(**{name: value}).validate().__dict__[name] == value
    for value in _outside(s):
        with pytest.raises(ValueError, match=rf"{name} must be a .* in {re.escape(s.range_text())}, got"):
            base.replace(**{name: value}).validate()


@pytest.mark.parametrize("argv, words", [
    (["--lr", "1e12"], "argument --lr: lr must be a finite number in (0, 10], got 1000000000000.0"),
    (["--lr", "0"], "lr must be a finite number in (0, 10]"),
    (["--sigma-first", "1e12"], "sigma_first must be a finite number in (0, 100]"),
    (["--sigma-last", "-1"], "sigma_last must be a finite number in (0, 100]"),
    (["--weight-decay", "nan"], "weight_decay must be a finite number in [0, 10]"),
    (["--label-smoothing", "1"], "label_smoothing must be a finite number in [0, 1)"),
    (["--epochs", "0"], "epochs must be a whole number in [1, 1000]"),
    (["--epochs", "1e3"], "--epochs: "),
    (["--batch-size", "-16"], "batch_size must be a whole number in [1, 65536]"),
    (["--patch-size", "0"], "patch_size must be a whole number in [1, 256]"),
    (["--max-steps", "0"], "max_steps must be a whole number in [1, 1000000000]"),
    (["--schedule", "cosine"], "unknown schedule 'cosine'; choose one of: onecycle, constant"),
    (["--seeds", "0,-1"], "seed must be a whole number in [0, 4294967295]"),
])
@pytest.mark.parametrize("command", [["compare"], ["sweep", "run", "--name", "s"]])
def test_a_training_setting_out_of_range_is_one_line_and_exit_2(command, argv, words, capsys, tmp_path):
    db = tmp_path / "runs.db"
    assert main([*command, *argv, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convcov: error: ") and err.count("\n") == 1 and words in err, err
    assert not db.exists()


def test_compare_refuses_a_thread_count_out_of_range(capsys):
    assert main(["compare", "--threads", "0"]) == 2
    assert "argument --threads: threads must be a whole number in [1, 1024], got 0" in capsys.readouterr().err


def test_compares_options_are_made_from_the_settings():
    parser = build_parser()
    compare = next(a for a in parser._actions if a.dest == "command").choices["compare"]
    actions = {a.option_strings[0]: a for a in compare._actions if a.option_strings}
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, flag in SETTING_FLAGS.items():
        s, action = SETTINGS[name], actions[flag]
        if s.type is not bool and name not in ("kernel_size", "patch_size"):  # by model: 9 and 2 for a ConvMixer
            assert action.default == defaults[name], name
        if s.range_text() and not s.choices:
            assert f"in {s.range_text()}" in action.help, name
        if s.choices:
            assert tuple(action.choices) == s.choices, name


def test_sweep_axes_and_how_their_values_are_read_follow_the_settings():
    assert AXES == tuple(name for name, s in SETTINGS.items() if s.axis)
    # every axis with an option that takes values, in compare's order, as it was when written out by hand
    assert list(AXIS_FLAGS.items()) == [
        ("--dataset", "dataset"), ("--model", "model"), ("--kernel-size", "kernel_size"),
        ("--patch-size", "patch_size"), ("--epochs", "epochs"), ("--batch-size", "batch_size"), ("--lr", "lr"),
        ("--weight-decay", "weight_decay"), ("--schedule", "schedule"), ("--label-smoothing", "label_smoothing"),
        ("--sigma-first", "sigma_first"), ("--sigma-last", "sigma_last"), ("--max-steps", "max_steps"),
        ("--precision", "precision")]
    samples = {int: ("1,3", [1, 3]), float: ("0.5,1", [0.5, 1.0]), bool: ("false,true", [False, True]),
               str: ("a,b", ["a", "b"])}
    for name in AXES:
        text, values = samples[SETTINGS[name].type]
        assert parse_values(name, text) == values, name


# -- the pages ---------------------------------------------------------------------------------------

#: The pages' widgets that set a TrainConfig field, by widget key.
WIDGETS = {"lab_k": "kernel_size", "lab_patch": "patch_size", "lab_sigma_first": "sigma_first",
           "lab_sigma_last": "sigma_last", "lab_epochs": "epochs", "lab_batch": "batch_size", "lab_lr": "lr",
           "lab_max_steps": "max_steps", "sweep_sigma_first": "sigma_first", "sweep_sigma_last": "sigma_last",
           "sweep_max_steps": "max_steps", "sweep_batch": "batch_size", "lc_k": "kernel_size",
           "lc_patch": "patch_size", "lc_epochs": "epochs"}
MODULES = {"labels": labels, "sweeps": sweeps_page, "lab": lab, "lab_form": lab_form}


def _page_widgets() -> dict:
    """{widget key: the values it offers} for WIDGETS, read from the source of the pages and the modules
    that draw their widgets: a number input's or slider's literal bounds (both ends), or a select slider's /
    multiselect's options (a constant of the module or of a convcov_app module); None where the page
    computes them (a bound from a setting)."""
    found = {}
    for page in sorted((REPO / "convcov_app").glob("**/*.py")):
        tree = ast.parse(page.read_text())
        constants = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                     for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value, ast.Tuple)
                     and all(isinstance(e, ast.Constant) for e in node.value.elts)}
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            key = next((k.value.value for k in call.keywords if k.arg == "key" and isinstance(k.value, ast.Constant)),
                       None)
            if key not in WIDGETS:
                continue
            kind, args = call.func.attr, call.args[1:]
            if kind in ("number_input", "slider"):
                ends = args[:2]
                found[key] = ([e.value for e in ends] if all(isinstance(e, ast.Constant) for e in ends) else None)
            elif isinstance(args[0], ast.Name):
                found[key] = list(constants[args[0].id])
            else:  # labels.SIGMA_OPTIONS, sweeps.BATCH_SIZES
                found[key] = list(getattr(MODULES[args[0].value.id], args[0].attr))
    return found


def test_the_pages_offer_no_training_setting_outside_its_range():
    widgets = _page_widgets()
    assert set(widgets) == set(WIDGETS)  # every widget listed is still on a page
    for key, values in widgets.items():
        name = WIDGETS[key]
        for value in values or []:
            if value == 0 and name == "max_steps":  # 0: whole epochs (None)
                continue
            SETTINGS[name].check(name, value)
    cap = settings.max_kernel_size()
    for field, _, _, options, _ in sweeps_page.grid_lists(["mnist5k"], cap):
        name = {"kernel_sizes": "kernel_size", "patch_sizes": "patch_size", "epochs": "epochs"}.get(field)
        for value in options if name else []:
            SETTINGS[name].check(name, value)


def test_the_sweeps_page_and_the_lab_set_fields_that_exist_as_axes():
    assert set(sweeps_page.AXIS_TITLES) <= set(AXES)
    choice = sweeps_page.GridChoice("all", datasets=("mnist5k", "textures"), widths=(8, 16), kernel_sizes=(3, 5),
                                    patch_sizes=(1, 2), epochs=(1, 2), schedule="custom", sigma_firsts=(0.5, 1.0),
                                    sigma_lasts=(2.0, 3.0))
    grid = sweeps_page.build_sweep(choice)
    assert set(grid.axes) <= set(AXES) and set(grid.axes) <= set(sweeps_page.AXIS_TITLES)
    lab.LAB_TRAINING.validate()
    for preset in lab.PRESETS.values():
        preset.setup.training.validate()
