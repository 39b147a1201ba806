"""Waiting for something to happen, with a deadline and never a fixed sleep as the check."""

import time


def wait_for(condition, what: str, timeout: float = 120, poll_s: float = 0.1):
    """condition()'s first true value, polled every poll_s seconds; TimeoutError naming `what` when
    none comes in `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(poll_s)
    raise TimeoutError(f"{what}: not seen in {timeout:.0f} s")
