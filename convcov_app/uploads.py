"""Files a visitor uploads: the size limit, the checkpoint widgets, and reading an upload once.

Uploads are untrusted: the readers (convcov_core.models, matrix_files) take safetensors or
torch.load(weights_only=True) only, never a plain pickle, and refuse files above the limit.
"""

from __future__ import annotations

import streamlit as st

from convcov_core import models, settings


def upload_limit() -> int:
    """Bytes a checkpoint may have: CONVCOV_MAX_CHECKPOINT_MB (settings.max_checkpoint_bytes), and at
    most Streamlit's server.maxUploadSize, which refuses larger files first."""
    return min(settings.max_checkpoint_bytes(), int(st.get_option("server.maxUploadSize") * 1024 * 1024))


def checkpoint_uploader(prefix: str):
    """Sidebar widgets for a user's checkpoint: the file (keys `<prefix>_upload`) and its
    architecture (`<prefix>_arch`). Returns (upload, architecture spec), or None before a file."""
    upload = st.file_uploader("Checkpoint (state dict)", type=[s[1:] for s in models.CHECKPOINT_SUFFIXES],
                              key=f"{prefix}_upload",
                              help="safetensors, or a torch.save file of model.state_dict(); read with "
                                   "weights_only=True, so code inside a file never runs.")
    arch = st.selectbox("Architecture", list(models.CHECKPOINT_ARCHITECTURES), key=f"{prefix}_arch")
    st.caption(f"Up to {upload_limit() / 2**20:.0f} MiB. A ConvMixer's sizes are read from "
               "the file; for ConvNeXt pick the variant it was saved from.")
    return None if upload is None else (upload, models.CHECKPOINT_ARCHITECTURES[arch])


def read_upload_once(memo_name: str, upload, read, *args,
                     what: str = "the checkpoint (weights only; no code in it runs)"):
    """read(file bytes, file name, *args, max_bytes=upload_limit()), once per uploaded file and
    args in this session (kept in st.session_state[memo_name]); a ValueError is kept too and
    raised again on every rerun, for shown_errors to display."""
    memo_key = (upload.file_id, *args)
    memo = st.session_state.get(memo_name)
    if memo is None or memo[0] != memo_key:
        try:
            with st.spinner(f"Reading {what}…"):
                value = read(upload.getvalue(), upload.name, *args, max_bytes=upload_limit())
        except ValueError as err:
            value = err
        memo = st.session_state[memo_name] = (memo_key, value)
    if isinstance(memo[1], ValueError):
        raise memo[1]
    return memo[1]
