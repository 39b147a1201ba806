"""How many CPU threads a run trains on when its config leaves it open (TrainConfig.threads None).

torch takes every core. On a machine that other work keeps busy that is the slowest choice: each
parallel op waits at a barrier for a thread that has lost its time slice. Measured on the 2-core
development machine (docs/performance.md, Roofline): with the load average at 7-9, one thread ran a
ConvMixer-64/8 step 8.7x faster than two and the Lab's default comparison 7.3x faster; on the quiet
machine two threads were 1.7x faster than one. So a run takes torch's threads while the cores are
free of other work, and fewer, down to one, as other work fills them:

    threads = min(torch's, max(1, round(cores - others))),   others = load - own

load: the 1-minute load average (os.getloadavg); own: the cores this process kept busy, its CPU time
over wall time between looks, averaged as the kernel averages the load (a 1-minute exponential).
"""

from __future__ import annotations

import math
import os
import threading
import time

LOAD_MINUTE_S = 60.0  # the time constant of the 1-minute load average

_lock = threading.Lock()
_own = {"wall": None, "cpu": 0.0, "busy": 0.0}  # the last look, and this process's share of the load then


def threads_for(torch_threads: int, cores: int, others: float) -> int:
    """min(torch_threads, max(1, round(cores - others))): every thread torch would use while the
    cores are free of other work, one less for each core that other work keeps busy, at least one."""
    return min(torch_threads, max(1, round(cores - others)))


def own_load() -> float:
    """The cores this process kept busy, averaged over about the last minute as the load average is:
    busy <- busy e^(-dt/60) + rate (1 - e^(-dt/60)), rate = its CPU time / wall time since the last look."""
    with _lock:
        wall, cpu = time.monotonic(), time.process_time()
        if _own["wall"] is not None and wall > _own["wall"]:
            rate = (cpu - _own["cpu"]) / (wall - _own["wall"])
            keep = math.exp(-(wall - _own["wall"]) / LOAD_MINUTE_S)
            _own["busy"] = _own["busy"] * keep + rate * (1 - keep)
        _own["wall"], _own["cpu"] = wall, cpu
        return _own["busy"]


def others_load() -> float:
    """The load average less this process's own share: how many cores other work keeps busy (0 where
    the platform has no load average)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0
    return max(0.0, load - own_load())


def cpu_threads(torch_threads: int) -> int:
    """threads_for this machine now: its cores, and the load other work puts on them."""
    return threads_for(torch_threads, os.cpu_count() or 1, others_load())
