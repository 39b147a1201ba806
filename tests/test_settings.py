"""Every CONVCOV_* variable: its default, a good value, and a bad value refused with its name."""

from pathlib import Path

import pytest

from convcov_core import settings


@pytest.mark.parametrize("read, name, default, good, parsed, bad", [
    (settings.max_kernel_size, "CONVCOV_MAX_KERNEL", 51, "31", 31, ["30", "1", "-3", "big"]),
    (settings.refresh_seconds, "CONVCOV_REFRESH_S", 2.0, " 0.5 ", 0.5, ["0", "0.1", "61", "nan", "inf", "fast"]),
    (settings.max_checkpoint_bytes, "CONVCOV_MAX_CHECKPOINT_MB", 512 * 2**20, "0.5", 2**19, ["0", "-1", "lots", "inf"]),
    (settings.max_jobs, "CONVCOV_MAX_JOBS", 1, "3", 3, ["0", "1.5", "many"]),
    (settings.max_job_samples, "CONVCOV_MAX_JOB_SAMPLES", 200_000, "1_000_000", 1_000_000, ["-5", "x"]),
    (settings.max_sweep_trials, "CONVCOV_MAX_SWEEP_TRIALS", 10_000, "500", 500, ["0", "many"]),
])
def test_each_setting_has_a_default_parses_a_good_value_and_names_a_bad_one(read, name, default, good, parsed, bad):
    assert read({}) == default and read({name: "  "}) == default
    assert read({name: good}) == parsed
    for value in bad:
        with pytest.raises(ValueError, match=name):
            read({name: value})


def test_paths_and_debug(monkeypatch, tmp_path):
    assert settings.home({}) == Path("~/.convcov").expanduser()
    assert settings.home({"CONVCOV_HOME": str(tmp_path)}) == tmp_path
    assert settings.data({}) is None and settings.data({"CONVCOV_DATA": str(tmp_path)}) == tmp_path
    assert not settings.debug({}) and not settings.debug({"CONVCOV_DEBUG": "0"})
    assert settings.debug({"CONVCOV_DEBUG": "1"})
    assert settings.ray_address({}) is None and settings.ray_address({"CONVCOV_RAY_ADDRESS": " auto "}) == "auto"
    assert settings.ray_local({}) is False and settings.ray_local({"CONVCOV_RAY_LOCAL": "0"}) is False
    assert all(settings.ray_local({"CONVCOV_RAY_LOCAL": v}) for v in ("1", "true", "Yes", " on "))
    with pytest.raises(ValueError, match="CONVCOV_RAY_LOCAL must be 1, true, yes or on .*got 'maybe'"):
        settings.ray_local({"CONVCOV_RAY_LOCAL": "maybe"})
    monkeypatch.setenv("CONVCOV_MAX_KERNEL", "9")  # read when called, from os.environ by default
    assert settings.max_kernel_size() == 9


def test_no_module_reads_a_convcov_variable_but_settings():
    """Every CONVCOV_* variable is parsed in convcov_core/settings.py only."""
    root = Path(__file__).resolve().parents[1]
    sources = [*root.glob("convcov_core/**/*.py"), *root.glob("convcov_app/**/*.py"), root / "app.py"]
    readers = [str(p.relative_to(root)) for p in sources if p.name != "settings.py"
               and any(f'{call}("CONVCOV_' in p.read_text() for call in ("environ.get", "getenv", "environ["))]
    assert readers == []

