"""Shared test setup: a private CONVCOV_HOME per test module and few threads on small CI machines."""

import os

import pytest
import streamlit as st
import torch

# No test reaches the Hugging Face hub (timm's pretrained weights come from fixtures in a temporary
# cache); huggingface_hub reads this once, when timm first imports it, and server subprocesses inherit it.
os.environ["HF_HUB_OFFLINE"] = "1"

# pytest-xdist workers share the cores: each gets its share, so two workers on two cores do not
# fight over four threads.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // WORKERS)))


@pytest.fixture(autouse=True, scope="module")
def _isolated_convcov_home(tmp_path_factory):
    """Each module gets an empty CONVCOV_HOME and empty Streamlit caches, so runs saved by one
    module (and cached run lists, the server-wide job manager) never leak into another's pages.
    Also keeps everything tests write out of the user's ~/.convcov."""
    patch = pytest.MonkeyPatch()
    patch.setenv("CONVCOV_HOME", str(tmp_path_factory.mktemp("convcov_home")))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    patch.undo()


def pytest_terminal_summary(terminalreporter):
    """The fuzz test's counts (its "fuzz" user properties, which xdist brings back from the workers)."""
    lines = sorted(value for report in terminalreporter.stats.get("passed", [])
                   for name, value in report.user_properties if name == "fuzz")
    if lines:
        terminalreporter.section("fuzz counts")
        for line in lines:
            terminalreporter.line(line)
