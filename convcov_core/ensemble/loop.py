"""train_ensemble: trials in compatible groups (plan.py), each group trained by train's loop for a
group (train.train_group) through one grouped network (network.GroupedNetwork), and one RunResult
per trial as train() would return it.

Each member keeps its own history, step and epoch events (variant, seed, run_index as separate
runs) and divergence check (train.train_group); a callback's stop cancels the whole group and the
groups after it. On the CPU a group's large activations stay in the heap (heap.keep_large_blocks).
"""

from __future__ import annotations

from typing import Callable

from ..train import (
    Callback,
    OwnNetwork,
    RunResult,
    TrainConfig,
    load_training_data,
    new_history,
    resolve_device,
    train_group,
)
from ..train.loop import estimate_probe, timed_estimate
from .grouping import grouping_problem
from .heap import keep_large_blocks
from .network import GroupedNetwork
from .plan import ensemble_key, group_compatible, max_members, split_evenly


def train_ensemble(configs: list[TrainConfig], callback: Callback | None = None, *, models: list | None = None,
                   variants: list | None = None, run_indices: list[int] | None = None, n_runs: int | None = None,
                   memory_budget: int | None = None, sync_every: int | None = None,
                   on_result: Callable[[RunResult], None] | None = None) -> list[RunResult]:
    """Train every config, compatible ones together (plan.group_compatible), and return their
    RunResults in the order of configs, each as train(config) returns it: wall_time is the member's
    share of its group's (the group's wall time over its members). A config trained alone is a
    group of one, as in train(). variants / run_indices / n_runs label each config's events and result as
    train(variant=, run_index=, n_runs=) does (default: no variant, 0, 1, ... of len(configs)); a
    group's events also say how many runs train together and the run's place among them
    (ProgressEvent.together, .position: exact for groups of consecutive run indices, as compare's are).
    models: train these networks from their weights as they are (one per config, one architecture,
    trained in place), as train(model=) does. memory_budget: bytes a group may use (default:
    plan.MEMORY_SHARE of the memory available). After a cancel the configs not started yet come back
    "cancelled" with nothing trained. on_result(result): the result of each config that trained, as
    soon as its group (or its lone run) ends, before the next group starts (a cancelled one too)."""
    configs = [config.validate() for config in configs]
    n = len(configs)
    variants = [None] * n if variants is None else list(variants)
    run_indices = list(range(n)) if run_indices is None else list(run_indices)
    if not configs or len(variants) != n or len(run_indices) != n or (models is not None and len(models) != n):
        raise ValueError("train_ensemble needs at least one config, and one variant, run index and model "
                         "(when given) per config")
    results: list[RunResult | None] = [None] * n
    for group in _groups(configs, models, memory_budget):
        if any(r is not None and r.status == "cancelled" for r in results):
            for i in group:
                results[i] = _not_started(configs[i], variants[i])
            continue
        members = [configs[i] for i in group]
        network = _network(members, None if models is None else [models[i] for i in group])
        on_cpu = resolve_device(members[0].device).type == "cpu"
        with keep_large_blocks(on_cpu and len(group) > 1):
            group_results = train_group(members, callback, network=network, variants=[variants[i] for i in group],
                                        run_indices=[run_indices[i] for i in group],
                                        n_runs=n if n_runs is None else n_runs, sync_every=sync_every)
        for i, result in zip(group, group_results):
            results[i] = result
        _report(on_result, group_results)
    return results


def _network(configs: list[TrainConfig], models: list | None):
    """The train.Network of a group: a lone config's own network, else the members grouped as one."""
    if len(configs) == 1:
        return OwnNetwork(None if models is None else models[0])
    return GroupedNetwork(configs, models)


def _report(on_result, results: list) -> None:
    for result in results if on_result is not None else ():
        on_result(result)


def estimate_time(configs: list[TrainConfig], n_steps: int = 3) -> float:
    """Seconds train_ensemble(configs) should take: the probes (train.estimate_probe: n_steps timed
    steps after a warm-up, one evaluation) of its first group trained together and scaled as
    train.estimate_time scales one run's, times the number of groups."""
    configs = [config.validate() for config in configs]
    groups = group_compatible(configs)
    first = [estimate_probe(configs[i], n_steps) for i in groups[0]]
    return len(groups) * timed_estimate(configs[groups[0][0]],
                                        lambda clock: train_ensemble(first, clock, sync_every=1))


def _groups(configs: list[TrainConfig], models: list | None, memory_budget: int | None) -> list[list[int]]:
    """group_compatible's groups, or for given models one group (split to fit in memory) when the
    configs share their settings and grouping supports the models, else each alone."""
    if models is None:
        return group_compatible(configs, memory_budget=memory_budget)
    if len({ensemble_key(c) for c in configs}) != 1:
        raise ValueError("configs trained with given models must share every setting but "
                         "seed, init, sigmas, covariances, freeze_filters and keep_state_dict")
    info = load_training_data(configs[0])[4]
    if grouping_problem(models[0], info.in_chans, info.image_size) is not None:
        return [[i] for i in range(len(configs))]
    return split_evenly(list(range(len(configs))), max_members(configs[0], models[0], memory_budget))


def _not_started(config: TrainConfig, variant: str | None) -> RunResult:
    final = {"test_acc": None, "test_acc_raw": None, "train_acc": None, "loss": None}
    return RunResult(config=config, history=new_history(), final=final, status="cancelled",
                     message="cancelled before it started", wall_time=0.0,
                     device=str(resolve_device(config.device)), variant=variant)
