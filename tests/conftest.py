"""Shared test setup: a private CONVCOV_HOME per session and few threads on small CI machines."""

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True, scope="session")
def _isolated_convcov_home(tmp_path_factory):
    """Keep run stores and caches written by tests out of the user's ~/.convcov."""
    home = tmp_path_factory.mktemp("convcov_home")
    old = os.environ.get("CONVCOV_HOME")
    os.environ["CONVCOV_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("CONVCOV_HOME", None)
    else:
        os.environ["CONVCOV_HOME"] = old
