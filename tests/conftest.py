"""Shared test setup: a private CONVCOV_HOME per test module and few threads on small CI machines."""

import os

import pytest
import streamlit as st
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


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
