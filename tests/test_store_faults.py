"""A run store overwritten with random bytes: every page says so in words, with the way to move the
file aside, and no page shows an exception (the CLI's side is in tests/test_sweep.py)."""

import os

import pytest
import streamlit as st

from helpers.pages import new_app, page_scripts

#: Pages that read no run: closed forms; reports.
NO_RUNS_READ = ("convcov_app/pages/1_Covariance_Explorer.py", "convcov_app/pages/7_Paper_Claims.py")


@pytest.mark.parametrize("page", ["app.py", *page_scripts()])
def test_an_unreadable_run_store_is_named_on_every_page_without_an_exception(page, tmp_path, monkeypatch):
    st.cache_resource.clear()
    st.cache_data.clear()
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))
    (tmp_path / "runs.db").write_bytes(os.urandom(8192))
    at = new_app(page, timeout=120).run()
    assert [e.value for e in at.exception] == []
    said = [m.value for kind in ("error", "warning", "info") for m in at.get(kind)]
    if page not in NO_RUNS_READ:
        assert any("is not a readable run store" in m and "mv " in m for m in said), said


def test_the_training_lab_names_an_unreadable_store_once_and_keeps_its_setup(tmp_path, monkeypatch):
    """The sidebar, the latest comparison and History each said it (3 times); now once, at the top,
    and the setup and Run are still there."""
    st.cache_resource.clear()
    st.cache_data.clear()
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))
    (tmp_path / "runs.db").write_bytes(os.urandom(8192))
    at = new_app("convcov_app/pages/3_Training_Lab.py", timeout=120).run()
    assert [e.value for e in at.exception] == []
    said = [m.value for kind in ("error", "warning", "info", "caption", "markdown") for m in at.get(kind)]
    assert sum("is not a readable run store" in m for m in said) == 1, said
    assert at.error[0].value.startswith(f"{tmp_path / 'runs.db'} is not a readable run store")
    assert at.button(key="lab_run") and at.selectbox(key="lab_preset").value
