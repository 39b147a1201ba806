"""Files a visitor uploads: the size limit, the checkpoint widgets, and reading an upload once.

Uploads are untrusted: the readers (convcov_core.models, matrix_files) take safetensors or
torch.load(weights_only=True) only, never a plain pickle, and refuse files above the limit.
"""

from __future__ import annotations

import streamlit as st

from convcov_core import models, settings

#: The smallest filters an uploaded covariance may describe: a 1 x 1 "filter" is one pixel, with no
#: spatial structure to show, fit or resize (a 1 x 1 matrix drew flat filters on the Filter Gallery
#: and broke the Learned Covariances page's transfer slider, which starts at 3).
MIN_UPLOAD_KERNEL = 3


def streamlit_upload_bytes() -> int:
    """Streamlit's server.maxUploadSize in bytes as a visitor meets it. The option is in megabytes,
    which Streamlit's front end (1.67) counts in 10^6 bytes unless navigator.platform says Windows
    (then in 2^20, as its server does): a 199 MiB (208.7 MB) file is refused under "200"."""
    return int(st.get_option("server.maxUploadSize")) * 10**6


def upload_limit() -> int:
    """Bytes an uploaded file may have: CONVCOV_MAX_CHECKPOINT_MB (settings.max_checkpoint_bytes), and at
    most Streamlit's upload limit (streamlit_upload_bytes), which the browser enforces first."""
    return min(settings.max_checkpoint_bytes(), streamlit_upload_bytes())


def upload_limit_text() -> str:
    """The upload limit as the caption states it: Streamlit's in MB (10^6 bytes, as the browser counts
    them) with MiB beside it, where the checkpoint readers' messages count in MiB; a smaller
    CONVCOV_MAX_CHECKPOINT_MB in MiB with MB beside it; under a megabyte in bytes."""
    limit = upload_limit()
    if limit < 10**6:
        return f"{limit:,} bytes"
    if limit == streamlit_upload_bytes():
        return f"{limit / 10**6:g} MB ({limit / 2**20:.1f} MiB)"
    return f"{limit / 2**20:g} MiB ({limit / 10**6:.1f} MB)"


def too_small_kernel(name: str, kernel_size: int) -> str | None:
    """The message for covariances of filters smaller than MIN_UPLOAD_KERNEL, else None."""
    if kernel_size >= MIN_UPLOAD_KERNEL:
        return None
    side = kernel_size * kernel_size
    return (f"{name} holds covariances of {kernel_size} × {kernel_size} filters ({side} × {side} matrices): "
            f"filters of at least {MIN_UPLOAD_KERNEL} × {MIN_UPLOAD_KERNEL} pixels are needed to show, fit or "
            "resize a spatial covariance; upload the k² × k² covariance of k × k filters, e.g. 81 × 81 for "
            "9 × 9 filters")


def checkpoint_uploader(prefix: str):
    """Sidebar widgets for a user's checkpoint: the file (keys `<prefix>_upload`) and its
    architecture (`<prefix>_arch`). Returns (upload, architecture spec), or None before a file."""
    upload = st.file_uploader("Checkpoint (state dict)", type=[s[1:] for s in models.CHECKPOINT_SUFFIXES],
                              key=f"{prefix}_upload",
                              help="safetensors, or a torch.save file of model.state_dict(); read with "
                                   "weights_only=True, so code inside a file never runs.")
    arch = st.selectbox("Architecture", list(models.CHECKPOINT_ARCHITECTURES), key=f"{prefix}_arch")
    st.caption(f"Up to {upload_limit_text()}. A ConvMixer's sizes are read from "
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
