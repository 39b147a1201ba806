"""What the app says of a job's size: its work against the server's caps (CONVCOV_MAX_JOB_SAMPLES,
CONVCOV_MAX_JOB_TFLOP), and how long such runs took here (throughput.stored_estimate). No streamlit here."""

from __future__ import annotations

from convcov_core import text
from convcov_core.throughput import StoredEstimate


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


def stored_time_line(estimate: StoredEstimate | None, at_once: int = 1) -> str:
    """How long the runs should take by the run store's wall times (throughput.stored_estimate),
    `at_once` of them at a time, or that nothing stored can tell."""
    if estimate is None:
        return "No finished run is stored here yet to time this by: Estimate time measures a few steps now."
    took = f"about **{text.duration(estimate.seconds / at_once)}**" + (f" ({at_once} at a time)" if at_once > 1 else "")
    if estimate.flop_rate is None:
        return (f"Runs like these took {took} here before ({estimate.stored_alike} stored run"
                f"{'s' if estimate.stored_alike != 1 else ''} of the same shape; more if the machine is busier now).")
    alike = (f"; {estimate.same_shape} of the {estimate.n_runs} runs by {estimate.stored_alike} stored runs of "
             "their shape" if estimate.same_shape else "")
    runs = f"last {estimate.rate_runs} runs" if estimate.rate_runs > 1 else "one run"
    return (f"A rough guess: {took}, at the {estimate.flop_rate / 1e9:,.1f} GFLOP/s of the {runs} stored "
            f"here{alike}. Depthwise passes run far below that rate, "
            "so Estimate time measures it better.")
