"""What the app says of a job against the server's caps (CONVCOV_MAX_JOB_SAMPLES, CONVCOV_MAX_JOB_TFLOP).
No streamlit here."""

from __future__ import annotations


def work_line(images: int, tflop: float) -> str:
    return f"{images:,} training images and about {tflop:,.1f} TFLOP of training arithmetic"


def cap_warnings(what: str, images: int, tflop: float, max_images: int, max_tflop: int) -> list[str]:
    """A warning for each cap the job exceeds; `what` names it ("This comparison", "This sweep")."""
    warnings = []
    if images > max_images:
        warnings.append(f"{what} trains on {images:,} images, more than the {max_images:,} this server allows "
                        "per job (CONVCOV_MAX_JOB_SAMPLES): use fewer epochs, seeds, schemes or cells, or run "
                        "it from the command line on your own machine.")
    if tflop > max_tflop:
        warnings.append(f"{what} needs about {tflop:,.0f} TFLOP, more than the {max_tflop:,} this server allows "
                        "per job (CONVCOV_MAX_JOB_TFLOP): use a narrower or shallower model, a smaller kernel "
                        "or larger patches, fewer runs, or the command line on your own machine.")
    return warnings
