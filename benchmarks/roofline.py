"""How close to the machine's limit: one training step, layer type by layer type, against a roofline.

    python benchmarks/roofline.py                 # CPU: the Lab's model, the paper's rung, the regime map's base
    python benchmarks/roofline.py --device cuda   # the same on a GPU
    python benchmarks/roofline.py --ab            # depthwise.py's choices against the alternatives tried
    python benchmarks/roofline.py --quick         # tiny smoke run (tables and --ab)

For each model, one training step as convcov_core.train runs it (its model prepared by train's own
prepare_model: fast depthwise backward, layout, autocast dtype; its step by make_step): the FLOPs
and bytes of every pass by formula (convcov_core.work.step_work), and each pass timed alone on the
shapes, dtypes and layout the step runs it in (forward: the layer itself; backward: torch.autograd.grad
of that layer's output towards its input or its weights alone, so a depthwise dL/dx and dL/dw are
timed apart; AdamW: its step on copies of the trained parameters). The machine's peaks are measured in
the same rounds: a large matmul (fp32 and bf16) and a large copy (read + write). A pass's roofline
bound is max(FLOPs / peak FLOP/s, bytes / peak bytes/s), with the matmul peak of the step's precision;
% of roofline = bound / measured time. The whole measured step is set against the sum of the bounds.
Every timing is the median of --rounds rounds, all timed things taking turns within a round (a busy
machine then slows them alike); the 1-minute load average is printed beside the numbers.

--ab instead times one depthwise layer's passes and the whole step with each of two forms of a
depthwise.py function (EXPERIMENTS), on 1 and 2 threads, interleaved: bf16 convs wider than 13 on NCHW
bf16 copies (before) or in fp32 on channels_last images (now), at k = 15; dL/dw as one call on NCHW
images (now) or in chunks of channels_last images that fit one core's L2 cache (tried, not kept).

Then two rows of whole work: the Training Lab's default comparison (its Quick CPU preset, through
train.compare as the Lab's job and the CLI's compare run it), wall time and FLOPs (work.run_flops)
per second against the peak; and the quick claims suite, its FLOPs (reproduce.suite_flops) against the
run times recorded in reports/quick (it takes about 45 minutes, so it is not run here).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _depthwise_before import bf16_nchw_conv  # noqa: E402
from convcov_core import depthwise, reproduce, work  # noqa: E402
from convcov_core.compare import compare  # noqa: E402
from convcov_core.reproduce.regimes import cpu_map  # noqa: E402
from convcov_core.step import GRAPH_WARMUP_STEPS, adamw, autocast  # noqa: E402
from convcov_core.train import TrainConfig, load_training_data, resolve_device  # noqa: E402
from convcov_core.train.model import prepare_model  # noqa: E402
from convcov_core.train.network import make_step  # noqa: E402

QUICK = TrainConfig(model="convmixer-16/2", kernel_size=5, patch_size=4, batch_size=16, epochs=1, max_steps=2)
#: matmul side and copy size (MiB) of the peaks: large enough to leave the caches
PEAK_SIZES = {"cpu": (2048, 256), "cuda": (8192, 2048), "quick": (256, 8)}


def models(quick: bool, device: str) -> dict[str, TrainConfig]:
    """{label: config} of the models measured: the Lab's default, the paper's rung, the regime map's base."""
    if quick:
        return {"ConvMixer-16/2 k=5 p=4 (smoke)": QUICK.replace(device=device)}
    from convcov_app import lab

    return {"Lab default: ConvMixer-64/8 k=9 p=2, 28x28x1": lab.LAB_TRAINING.replace(device=device),
            "paper's rung: ConvMixer-256/8 k=9 p=1, 32x32x3": reproduce.paper_suite(device=device).base,
            "regime map base: ConvMixer-64/8 k=9 p=2, 1 thread": cpu_map(device).base}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def medians(timers: dict, rounds: int, device: torch.device) -> dict[str, float]:
    """{name: median seconds of one call} over `rounds` rounds after a warm-up call, the timers
    taking turns in every round, in reverse order every other round (what runs first or after
    another timer's threads is not always the same timer)."""
    for fn in timers.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in timers}
    for i in range(rounds):
        for name, fn in list(timers.items())[::1 if i % 2 == 0 else -1]:
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_timers(device: torch.device, quick: bool) -> tuple[dict, dict]:
    """({peak: timer}, {peak: FLOPs or bytes of one call}): matmuls in fp32 and bf16, a copy."""
    side, mib = PEAK_SIZES["quick" if quick else device.type]
    a, b = (torch.randn(side, side, device=device) for _ in range(2))
    a16, b16 = a.bfloat16(), b.bfloat16()
    src = torch.randn(mib * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    timers = {"matmul fp32": lambda: a @ b, "matmul bf16": lambda: a16 @ b16, "copy": lambda: dst.copy_(src)}
    return timers, {"matmul fp32": 2 * side**3, "matmul bf16": 2 * side**3, "copy": 2 * src.numel() * 4}


def grad_timer(site: work.Site, x: torch.Tensor, device: torch.device, dtype, *, to_input: bool,
               to_params: bool):
    """A timer of torch.autograd.grad of the site's output (one forward, kept) towards its input and/or
    its trained parameters alone; a custom Function's backward then skips the other gradient too."""
    params = {name: p.detach().clone().requires_grad_(to_params and p.requires_grad)  # the step updates its own
              for name, p in site.module.named_parameters(recurse=False)}
    buffers = {name: b.clone() for name, b in site.module.named_buffers(recurse=False)}  # BatchNorm's
    x = x.detach().requires_grad_(to_input)  # statistics: the forward timer updates the module's own
    with autocast(device, dtype):
        y = torch.func.functional_call(site.module, {**params, **buffers}, (x,))
    wrt = [x] * to_input + [p for p in params.values() if p.requires_grad]
    g = torch.randn_like(y)
    return lambda: torch.autograd.grad(y, wrt, g, retain_graph=True)


def pass_timers(site: work.Site, device: torch.device, dtype, layout) -> dict:
    """{pass: timer} of the passes work.site_work counts for `site`, on an input like the step's."""
    x = torch.randn(site.in_shape, device=device, dtype=site.dtype)
    x = x.contiguous(memory_format=layout) if x.dim() == 4 else x
    if site.kind == "residual":
        other = torch.randn_like(x)
        return {"residual add": lambda: (x + other, x + other)}  # the forward's add, the backward's sum
    x.requires_grad_(site.input_grad)

    def forward():
        with autocast(device, dtype):
            site.module(x)

    names = work.PASSES[site.kind]
    if site.kind == "depthwise":
        timers = {names[0]: forward}
        if site.input_grad:
            timers[names[1]] = grad_timer(site, x, device, dtype, to_input=True, to_params=False)
        if trains_weight(site):
            timers[names[2]] = grad_timer(site, x, device, dtype, to_input=False, to_params=True)
        return timers
    return {names[0]: forward, names[1]: grad_timer(site, x, device, dtype, to_input=site.input_grad, to_params=True)}


def trains_weight(site: work.Site) -> bool:
    weight = getattr(site.module, "weight", None)
    return weight is not None and weight.requires_grad


def signature(site: work.Site) -> tuple:
    """Sites with equal signatures run the same passes on the same shapes: timed once, counted n times."""
    return (site.kind, type(site.module).__name__, site.module.extra_repr(), site.in_shape, site.dtype,
            site.input_grad, trains_weight(site))


def adamw_timer(config: TrainConfig, model: torch.nn.Module, device: torch.device):
    """A timer of AdamW's step (train's optimizer) on copies of the model's trained parameters."""
    params = [p.detach().clone().requires_grad_() for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = adamw(params, config.lr, config.weight_decay, device, graphed=False)
    return optimizer.step


def random_images(config: TrainConfig, info, device: torch.device, layout) -> torch.Tensor:
    """A batch of config's size of random images of info's shape, in the step's layout."""
    x = torch.randn(config.batch_size, info.in_chans, info.image_size, info.image_size, device=device)
    return x.contiguous(memory_format=layout)


def step_timer(config: TrainConfig, model: torch.nn.Module, info, device: torch.device, dtype, layout):
    """A timer of train's own step (forward, loss, backward, AdamW) on a random batch, warmed up past a
    CUDA graph's capture."""
    step = make_step(config, model, device, dtype)
    x = random_images(config, info, device, layout)
    y = torch.randint(0, len(info.classes), (config.batch_size,), device=device)
    for _ in range(GRAPH_WARMUP_STEPS):
        step(x, y, config.lr)
    return lambda: step(x, y, config.lr)


def prepared(config: TrainConfig):
    """(device, images info, model as train() prepares it, autocast dtype, layout, the step's sites)."""
    device = resolve_device(config.device)
    info = load_training_data(config)[4]
    model, dtype, channels_last = prepare_model(config, None, info, device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    with autocast(device, dtype):
        sites = work.step_sites(model, random_images(config, info, device, layout))
    return device, info, model, dtype, layout, sites


def measure_model(config: TrainConfig, rounds: int, quick: bool) -> dict:
    """Everything one model's table shows, measured in one set of rounds."""
    device, info, model, dtype, layout, sites = prepared(config)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    element_bytes = torch.finfo(dtype or torch.float32).bits // 8
    rows = work.step_work(sites, element_bytes, n_params)
    counts = Counter(map(signature, sites))
    first = {signature(s): s for s in reversed(sites)}  # the first site of each signature
    timers, groups = {}, {}  # groups: pass -> [(timer name, count)]
    for sig, n in counts.items():
        for name, fn in pass_timers(first[sig], device, dtype, layout).items():
            timers[(name, sig)] = fn
            groups.setdefault(name, []).append(((name, sig), n))
    timers["adamw"], groups["adamw"] = adamw_timer(config, model, device), [("adamw", 1)]
    peaks, peak_work = peak_timers(device, quick)
    timers.update(peaks)
    timers["step"] = step_timer(config, model, info, device, dtype, layout)
    load_start = os.getloadavg()[0]
    t = medians(timers, rounds, device)
    peaks = {name: peak_work[name] / t[name] for name in peaks}
    return {"rows": rows, "times": {name: sum(t[key] * n for key, n in g) for name, g in groups.items()},
            "step": t["step"], "peaks": peaks, "flops_peak": peaks[f"matmul {'bf16' if dtype else 'fp32'}"],
            "dtype": dtype, "load": (load_start, os.getloadavg()[0]), "device": device}


def chunked_weight_grad(x, grad_out, kernel_size, padding, chunk_bytes=2**20):
    """Tried for depthwise_weight_grad, not kept: the swapped convolution on chunks of the batch of
    about 1 MiB of padded images (one core's L2 cache), padded straight into channels_last, which
    oneDNN convolves without reordering them; summed in fp32."""
    (n, c, h, w), (ph, pw) = x.shape, padding
    hp, wp = h + 2 * ph, w + 2 * pw
    step = max(1, chunk_bytes // (c * hp * wp * x.element_size()))
    total = 0
    for i in range(0, n, step):
        part, g = x[i:i + step], grad_out[i:i + step]
        m = len(part)
        padded = part.new_zeros(hp, wp, m, c)
        padded[ph:ph + h, pw:pw + w] = part.permute(2, 3, 0, 1)
        images = padded.as_strided((1, m * c, hp, wp), (hp * wp * m * c, 1, wp * m * c, m * c))
        lags = F.conv2d(images, g.reshape(m * c, 1, *g.shape[2:]), groups=m * c)
        total = total + lags.reshape(m, c, *kernel_size).sum(0, dtype=torch.float32)
    return total.unsqueeze(1)


#: --ab: {experiment: (the depthwise.py function replaced, {form A: its implementation, form B: ...},
#: kernel size or None for the model's own)}; ratios are A / B
EXPERIMENTS = {
    "bf16 k=15": ("_depthwise_conv", {"bf16 NCHW (before)": bf16_nchw_conv,
                                      "fp32 channels_last (now)": depthwise._depthwise_conv}, 15),
    "dL/dw": ("depthwise_weight_grad", {"one NCHW call (now)": depthwise.depthwise_weight_grad,
                                        "channels_last chunks (tried)": chunked_weight_grad}, None),
}


def patched(attribute: str, impl, threads: int, fn):
    """fn run on `threads` CPU threads with depthwise.<attribute> replaced by impl."""
    def run():
        saved, previous = getattr(depthwise, attribute), torch.get_num_threads()
        setattr(depthwise, attribute, impl)
        torch.set_num_threads(threads)
        try:
            fn()
        finally:
            setattr(depthwise, attribute, saved)
            torch.set_num_threads(previous)
    return run


def ab(label: str, config: TrainConfig, experiment: str, rounds: int) -> list[float]:
    """Print one depthwise layer's passes (the step's shapes) and the whole training step with each form
    of EXPERIMENTS[experiment], on 1 and 2 threads, all interleaved; returns the step ratios (A / B)
    on 1 and 2 threads. Passes the experiment does not touch show the noise."""
    attribute, forms, kernel = EXPERIMENTS[experiment]
    config = config.replace(kernel_size=kernel or config.kernel_size)
    device, info, model, dtype, layout, sites = prepared(config)
    site = next(s for s in sites if s.kind == "depthwise")
    timed = {**pass_timers(site, device, dtype, layout), "step": step_timer(config, model, info, device, dtype, layout)}
    timers = {(what, form, n): patched(attribute, impl, n, fn)
              for n in (1, 2) for form, impl in forms.items() for what, fn in timed.items()}
    load = os.getloadavg()[0]
    t = medians(timers, rounds, device)
    a_form, b_form = forms
    print(f"\n{experiment}, {label} k={config.kernel_size}: A = {a_form}, B = {b_form} (load {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f})")
    for n in (1, 2):
        for what in timed:
            a, b = t[(what, a_form, n)], t[(what, b_form, n)]
            print(f"  {n} thread(s), {what:<16} A {a * 1e3:9.1f} ms, B {b * 1e3:9.1f} ms: A / B {a / b:.2f}x")
    return [t[("step", a_form, n)] / t[("step", b_form, n)] for n in (1, 2)]


def print_table(label: str, m: dict) -> float:
    """Print one model's table; returns the sum of the bounds over the measured step."""
    peaks, step, flops_peak = m["peaks"], m["step"], m["flops_peak"]
    print(f"\n{label} ({m['device'].type}, {'bf16 autocast' if m['dtype'] else 'fp32'}, "
          f"{torch.get_num_threads()} threads; load {m['load'][0]:.1f} -> {m['load'][1]:.1f})")
    print(f"peaks: matmul fp32 {peaks['matmul fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['matmul bf16'] / 1e9:.0f} "
          f"GFLOP/s; copy {peaks['copy'] / 1e9:.1f} GB/s")
    print(f"{'pass':<16} {'GFLOP':>8} {'MB':>8} {'FLOP/B':>7} {'ms':>9} {'GFLOP/s':>8} {'GB/s':>6} "
          f"{'bound ms':>9} {'% roof':>7} {'% step':>7}")
    bounds = 0.0
    for name, w in m["rows"].items():
        seconds = m["times"].get(name, 0.0)
        bound = max(w.flops / flops_peak, w.bytes / peaks["copy"])
        bounds += bound
        if not w.flops:
            continue  # a pass the step does not run (frozen filters)
        print(f"{name:<16} {w.flops / 1e9:8.3f} {w.bytes / 1e6:8.1f} {w.flops / w.bytes:7.1f} "
              f"{seconds * 1e3:9.2f} {w.flops / seconds / 1e9:8.1f} {w.bytes / seconds / 1e9:6.1f} "
              f"{bound * 1e3:9.2f} {100 * bound / seconds:6.1f}% {100 * seconds / step:6.1f}%")
    passes = sum(m["times"].values())
    print(f"{'sum of passes':<16} {'':>8} {'':>8} {'':>7} {passes * 1e3:9.2f} {'':>8} {'':>6} "
          f"{bounds * 1e3:9.2f} {100 * bounds / passes:6.1f}% {100 * passes / step:6.1f}%")
    print(f"{'training step':<16} {'':>8} {'':>8} {'':>7} {step * 1e3:9.2f} {'':>8} {'':>6} "
          f"{bounds * 1e3:9.2f} {100 * bounds / step:6.1f}%")
    return bounds / step


def lab_comparison(quick: bool, device: str, flops_peak: float, threads: int | None = None) -> str:
    """Run the Lab's default comparison (on `threads` CPU threads: TrainConfig.threads, None as the Lab
    leaves it); one line: wall time, FLOPs, share of the peak."""
    from convcov_app import lab

    setup = lab.LabSetup(training=QUICK, n_seeds=1) if quick else lab.PRESETS[lab.QUICK_CPU].setup
    training = setup.training.replace(device=device, threads=threads)
    plan = lab.plan_comparison(dataclasses.replace(setup, training=training))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    compare(plan.base, plan.variants, plan.seeds, references=plan.references, ensemble=plan.ensemble)
    wall = time.perf_counter() - start
    tflop = lab.plan_work(plan)[1]
    return (f"Lab default comparison ({plan.n_runs} runs, threads {threads or 'as the Lab'}): {wall:.1f} s wall, "
            f"{tflop:.2f} TFLOP, {tflop * 1e3 / wall:.1f} GFLOP/s = {100 * tflop * 1e12 / wall / flops_peak:.1f}% "
            f"of the matmul peak (load {load:.1f} -> {os.getloadavg()[0]:.1f})")


def suite_row(name: str, flops_peak: float) -> str:
    """A claims suite's FLOPs; for the quick suite, against the run times reports/quick recorded: each
    distinct run once (a map cell that repeats a target run is listed twice, with the same time; the
    CNN runs record none), each timed as it trained on one of the local pool's one-thread workers."""
    suite = reproduce.build_suite(name)
    tflop = reproduce.suite_flops(suite) / 1e12
    if name != "quick":
        return f"{name} claims suite ({reproduce.suite_runs(suite)} runs): {tflop:.4f} TFLOP"
    report = reproduce.load_report(reproduce.REPO_REPORTS / name)
    timed = {(r["seed"], r["wall_time"]) for r in report["runs"]
             if r["stage"] != "claim 3 source" and r["wall_time"] is not None}
    run_seconds = sum(seconds for _, seconds in timed)
    return (f"{suite.name} claims suite ({reproduce.suite_runs(suite)} runs): {tflop:.1f} TFLOP; reports/quick "
            f"({report['created'][:10]}) recorded {report['wall_time_s']:.0f} s for the {report['runs_trained']} "
            f"runs its last call trained and {run_seconds:.0f} s of run time over {len(timed)} distinct runs: "
            f"{tflop * 1e3 / run_seconds:.1f} GFLOP/s a run, {100 * tflop * 1e12 / run_seconds / flops_peak:.1f}% "
            "of the matmul peak (of the last model's threads)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="a tiny model, for a smoke test")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 5; 1 with --quick)")
    parser.add_argument("--only", default="", help="only the models whose label contains this text")
    parser.add_argument("--no-runs", action="store_true", help="skip the Lab comparison and the suite rows")
    parser.add_argument("--lab-threads", type=int, default=None,
                        help="also run the Lab comparison on this many CPU threads (order: Lab's, N, N, Lab's)")
    parser.add_argument("--ab", action="store_true", help="instead: depthwise.py's CPU choices against the "
                        "alternatives tried (EXPERIMENTS), whole steps and one layer's passes, on 1 and 2 threads")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    chosen = {label: c for label, c in models(args.quick, args.device).items() if args.only in label}
    if args.ab or args.quick:  # --quick: a smoke run of both
        ratios = {(experiment, label): ab(label, config, experiment, rounds)
                  for experiment in EXPERIMENTS for label, config in chosen.items()}
        print("summary: training step A / B on 1 and 2 threads: " + "; ".join(
            f"{experiment} on {label}: {r1:.2f}x, {r2:.2f}x" for (experiment, label), (r1, r2) in ratios.items()))
        if args.ab:
            return
    ratios, flops_peaks = {}, []
    for label, config in chosen.items():
        torch.set_num_threads(config.threads or threads)
        m = measure_model(config, rounds, args.quick)
        ratios[label] = print_table(label, m)
        torch.set_num_threads(threads)
        flops_peaks.append(m["flops_peak"])
    if not args.no_runs:  # the Lab against the first model's peak (its own), the suite against the last
        print()               # model's (the regime map's base on one thread, as the pool's workers train)
        order = (None, args.lab_threads, args.lab_threads, None) if args.lab_threads else (None,)
        for n in order:  # A B B A: a load that drifts weighs on both alike
            print(lab_comparison(args.quick, args.device, flops_peaks[0], n), flush=True)
        print(suite_row("tiny" if args.quick else "quick", flops_peaks[-1]))
    print("summary: " + "; ".join(f"{label}: step at {100 * r:.0f}% of its roofline bound"
                                  for label, r in ratios.items()))


if __name__ == "__main__":
    main()
