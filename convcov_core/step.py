"""One training step for `train.train`: forward, cross-entropy, backward, AdamW.

`EagerStep` runs it op by op. `GraphStep` (CUDA) runs the first few steps eagerly on a side stream,
then captures the whole step once as a CUDA graph and replays it: each later step is one graph
launch plus copying the batch into static buffers and the learning rate into a device tensor. Small
models (ConvMixer-64/6 on 28 x 28 digits) are bound by per-kernel launch and Python costs on a GPU,
which the replay removes; the arithmetic is the same, so the steps are the same training steps.

Precision: "auto" trains under bf16 autocast where the hardware has bf16 arithmetic (CUDA; CPUs
with AMX tiles or AVX512-BF16, where bf16 matrix products run faster than fp32 and activations take
half the memory traffic) and in fp32 elsewhere (on a CPU without bf16 instructions bf16 is emulated
and slower); "fp32" and "bf16" force one. Parameters, AdamW state and BatchNorm statistics stay
fp32 either way; bf16 needs no loss scaling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

GRAPH_WARMUP_STEPS = 3  # eager steps before capture (cuDNN autotuning, allocator, AdamW state)
PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic: AMX tiles or AVX512-BF16 (False where PyTorch cannot
    tell: torch.cpu's probes are private and may be missing from a version)."""
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:
            continue
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """torch.bfloat16 when the step runs under bf16 autocast, None for fp32 (see module docstring)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())
        return torch.bfloat16 if bf16 else None
    return torch.bfloat16 if precision == "bf16" else None


def autocast(device: torch.device, dtype: torch.dtype | None, *, cache: bool = True):
    """Autocast to dtype on device, or plain fp32 for None. A graph capture needs the cast cache off."""
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache)


def adamw(params: list, lr: float, weight_decay: float, device: torch.device, *, graphed: bool):
    """AdamW; on CUDA the fused kernel, and for a captured step a device-tensor learning rate."""
    if device.type != "cuda":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if graphed:
        lr = torch.tensor(lr, dtype=torch.float32, device=device)
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True, capturable=True)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def cross_entropy(out: Tensor, y: Tensor, label_smoothing: float) -> tuple[Tensor, Tensor, Tensor]:
    """(objective, loss, number correct) of one network's batch: the mean cross-entropy is both the
    objective that backward runs and the loss reported."""
    loss = F.cross_entropy(out, y, label_smoothing=label_smoothing)
    return loss, loss.detach(), (out.detach().argmax(1) == y).sum()


class EagerStep:
    """step(x, y, lr) -> (loss, number correct), device tensors (nothing read back); dtype: the
    autocast dtype (None: fp32). criterion(out, y, label_smoothing) -> (objective, loss, correct):
    cross_entropy by default; ensemble.py's returns one loss and count per member."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                 label_smoothing: float = 0.0, dtype: torch.dtype | None = None, criterion=cross_entropy):
        self.model, self.optimizer, self.device = model, optimizer, device
        self.label_smoothing, self.dtype, self.criterion = label_smoothing, dtype, criterion

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr

    def forward_backward(self, x: Tensor, y: Tensor, *, cache: bool = True) -> tuple[Tensor, Tensor]:
        with autocast(self.device, self.dtype, cache=cache):
            objective, loss, correct = self.criterion(self.model(x), y, self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        self.optimizer.step()
        return loss, correct

    def __call__(self, x: Tensor, y: Tensor, lr: float) -> tuple[Tensor, Tensor]:
        self.set_lr(lr)
        return self.forward_backward(x, y)


class GraphStep(EagerStep):
    """EagerStep captured as a CUDA graph after GRAPH_WARMUP_STEPS eager steps (batch shape fixed)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps_run = 0
        self.graph = self.static = None
        self.side_stream = torch.cuda.Stream(self.device)

    def __call__(self, x: Tensor, y: Tensor, lr: float) -> tuple[Tensor, Tensor]:
        self.set_lr(lr)
        self.steps_run += 1
        if self.steps_run <= GRAPH_WARMUP_STEPS:
            self.side_stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.side_stream):
                result = self.forward_backward(x, y, cache=False)
            torch.cuda.current_stream(self.device).wait_stream(self.side_stream)
            return result
        if self.graph is None:
            self._capture(x, y)
        static_x, static_y, loss, correct = self.static
        static_x.copy_(x)
        static_y.copy_(y)
        self.graph.replay()
        return loss.clone(), correct.clone()

    def _capture(self, x: Tensor, y: Tensor) -> None:
        """Record one step on static copies of the batch; recording runs nothing."""
        static_x, static_y = x.clone(), y.clone()
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            loss, correct = self.forward_backward(static_x, static_y, cache=False)
        self.static = (static_x, static_y, loss, correct)
