"""Expert kernels on a GPU: the experts of one rank (SwiGLU, or ReLU^2) through the kernels MoE frameworks run.

- ``grouped_mm``: ``torch._grouped_mm`` over the rank's tokens sorted by expert, one launch per GEMM,
  uneven groups given by cumulative offsets (torchtitan's and transformers' grouped experts path);
  weights stored [G, out, in] and passed transposed, as torchtitan does.
- ``loop``: ``F.linear`` per non-empty expert, as eager transformers experts modules run them.
- ``megatron``: Megatron-Core 0.19's fused MoE (``dodoco.compute.megatron``: its inference path,
  which needs no Transformer Engine) for ReLU^2 experts; its SwiGLU grouped MLP, ``TEGroupedMLP``,
  needs Transformer Engine. ``megatron_status`` says in one line what can run here.

``ExpertBench`` holds a pool of expert weights large enough that consecutive repetitions read
weights that are not in L2 (the pool spans at least 3x the L2 size), draws fresh random inputs, and
``time_ms`` times a call's GPU work with CUDA events after warm-up, each repetition queued behind a
sleep kernel that gives the host a head start (median of repetitions; CPU: wall clock).
Shape legend: T tokens of the rank, G experts of the rank, H hidden size, I expert width.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import torch
import torch.nn.functional as F

from dodoco.compute.features import ExpertShape

__all__ = ["DEFAULT_L2", "ExpertBench", "check_kernels", "device_facts", "l2_bytes", "megatron_status", "time_ms"]


DEFAULT_L2 = 60 << 20  # H200; H100 has 50 MB


def l2_bytes(device) -> int:
    """L2 cache size of a CUDA device in bytes (DEFAULT_L2 on CPU or when unknown): the one lookup of the
    replay harness and the expert kernels."""
    device = torch.device(device)
    if device.type != "cuda":
        return DEFAULT_L2
    return int(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or DEFAULT_L2)


def device_facts(device) -> dict:
    """Name, SMs, L2 bytes and torch version of the device that runs the kernels; on a GPU its UUID and
    the host's name too, so repeat calibrations say whether they ran on the same card."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return {"device": "cpu", "sms": 1, "l2_bytes": l2_bytes(dev), "torch": torch.__version__, "cuda": None}
    p = torch.cuda.get_device_properties(dev)
    return {
        "device": torch.cuda.get_device_name(dev),
        "sms": int(p.multi_processor_count),
        "l2_bytes": l2_bytes(dev),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "memory_GiB": round(p.total_memory / 2**30, 1),
        "gpu_uuid": str(getattr(p, "uuid", "")) or None,
        "host": socket.gethostname(),
    }


def activate(up, shape: ExpertShape):
    """The expert's activation of its up GEMM's output up [T, up_width] -> h [T, I]: SwiGLU
    silu(gate) * up (gate the first I columns), or ReLU^2 relu(up)^2 (Nemotron-H, Megatron's squared_relu)."""
    if shape.act == "relu2":
        return torch.square(F.relu(up))
    I = shape.width
    return F.silu(up[:, :I]) * up[:, I:]


class ExpertBench:
    """Expert weights of one shape on a device, rotated so that no repetition finds them in L2."""

    def __init__(self, shape: ExpertShape, max_experts: int, device="cuda", seed: int = 0):
        self.shape, self.device = shape, torch.device(device)
        self.dtype = torch.bfloat16
        l2 = device_facts(device)["l2_bytes"]
        self.pool = int(max(2 * max_experts, -(-3 * l2 // shape.weight_bytes), 2))
        g = torch.Generator(device=self.device).manual_seed(seed)
        H, I = shape.hidden, shape.width
        # drawn in bf16 directly: no float32 transient (a DeepSeek-V3 pool is 11 GB in bf16)
        self.w1 = torch.randn(self.pool, shape.up_width, H, device=self.device, generator=g, dtype=self.dtype)
        self.w1.mul_(H**-0.5)
        self.w2 = torch.randn(self.pool, H, I, device=self.device, generator=g, dtype=self.dtype).mul_(I**-0.5)
        self.align = 1  # rows per group rounded up to this (1: none; set when the kernel demands it)
        self._route = None  # (loads, fused_routing) of the last rank the megatron kernel ran

    def start(self, k: int, G: int) -> int:
        """First pool expert of repetition k for G experts: consecutive repetitions use disjoint windows."""
        per = max(1, self.pool // G)
        return (k % per) * G

    def inputs(self, loads, seed: int = 0):
        """(x bf16 [T, H] random, offs int32 [G] on the device, host loads) of a rank's loads."""
        t = np.asarray(loads, dtype=np.int64)
        if self.align > 1:
            t = -(-t // self.align) * self.align
        g = torch.Generator(device=self.device).manual_seed(seed)
        x = torch.randn(int(t.sum()), self.shape.hidden, device=self.device, generator=g, dtype=self.dtype)
        offs = torch.as_tensor(np.cumsum(t), dtype=torch.int32, device=self.device)
        return x, offs, [int(v) for v in t]

    def grouped_mm(self, x, offs, k: int = 0):
        """The rank's experts through torch._grouped_mm -> [T, H]."""
        G = offs.shape[0]
        s = self.start(k, G)
        up = torch._grouped_mm(x, self.w1[s : s + G].transpose(-2, -1), offs=offs)
        return torch._grouped_mm(activate(up, self.shape), self.w2[s : s + G].transpose(-2, -1), offs=offs)

    def loop(self, x, loads, k: int = 0):
        """The rank's experts one at a time (F.linear per non-empty expert) -> [T, H]."""
        s = self.start(k, len(loads))
        out = torch.empty_like(x)
        o = 0
        for g, n in enumerate(loads):
            if n == 0:
                continue
            up = F.linear(x[o : o + n], self.w1[s + g])
            out[o : o + n] = F.linear(activate(up, self.shape), self.w2[s + g])
            o += n
        return out

    def megatron(self, x, loads, k: int = 0):
        """The rank's ReLU^2 experts through Megatron-Core's fused MoE, tokens arriving in a seeded
        shuffle (``compute.megatron``) -> fp32 [T, H] in that order."""
        from dodoco.compute.megatron import fused_moe, fused_routing

        if self._route is None or self._route[0] != tuple(loads):
            self._route = (tuple(loads), fused_routing(loads, self.device))
        s = self.start(k, len(loads))
        return fused_moe(x, self.w1[s : s + len(loads)], self.w2[s : s + len(loads)], self._route[1])

    def call(self, kernel: str, x, offs, loads, k: int = 0):
        if kernel == "grouped_mm":
            return self.grouped_mm(x, offs, k)
        if kernel == "loop":
            return self.loop(x, loads, k)
        if kernel == "megatron":
            return self.megatron(x, loads, k)
        raise ValueError(f"kernel {kernel!r} cannot run here")


def head_start_cycles(fn, k: int, device) -> int:
    """GPU clock cycles of a sleep that outlasts the host's launches of fn(k) (measured unsynchronised,
    1.5x plus 20 us, at 2 GHz, the Hopper boost clock: an idle-clocked GPU sleeps longer, never shorter)."""
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn(k)
    host_ms = (time.perf_counter() - t0) * 1e3
    torch.cuda.synchronize(device)
    return int((1.5 * host_ms + 0.02) * 2e6)


def time_ms(fn, device, warmup: int = 2, min_reps: int = 7, max_reps: int = 40, target_ms: float = 30.0) -> list[float]:
    """GPU time of fn(k) for repetitions k = 0, 1, ... -> ms per repetition, after ``warmup`` calls.

    CUDA: each repetition is queued behind a sleep kernel long enough for the host to launch all of
    fn's kernels (``head_start_cycles``), so the events time the GPU's work back to back, as in a model
    whose host runs ahead of its GPU (host launch overhead excluded; a host-bound eager loop is
    slower than this). CPU: wall clock. As many repetitions as fit ``target_ms`` in [min_reps, max_reps].
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    for k in range(warmup):
        fn(k)
    if cuda:
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    fn(warmup)
    if cuda:
        torch.cuda.synchronize(dev)
    first = (time.perf_counter() - t0) * 1e3
    reps = int(np.clip(target_ms / max(first, 1e-3), min_reps, max_reps))
    if not cuda:
        out = []
        for k in range(reps):
            t0 = time.perf_counter()
            fn(k)
            out.append((time.perf_counter() - t0) * 1e3)
        return out
    cycles = head_start_cycles(fn, warmup + 1, dev)
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for k, (a, b) in enumerate(ev):
        torch.cuda._sleep(cycles)
        a.record()
        fn(k)
        b.record()
    torch.cuda.synchronize(dev)
    return [a.elapsed_time(b) for a, b in ev]


def check_kernels(device="cuda", seed: int = 0) -> dict:
    """Every kernel against a float64 reference on a small case of uneven groups (one empty), SwiGLU and
    ReLU^2 (the ReLU^2 megatron kernel where it runs): {"kernel" or "kernel relu2": relative error
    ||out - ref|| / ||ref||}; bf16 operands land near 1e-3 to 1e-2."""
    from dodoco.compute.megatron import fused_status

    out = {}
    for act in ("swiglu", "relu2"):
        shape = ExpertShape(256, 128, act=act)
        bench = ExpertBench(shape, 4, device, seed)
        x, offs, host = bench.inputs([37, 0, 5, 90], seed)
        kernels = ("grouped_mm", "loop") + (("megatron",) if fused_status(shape, device) is None else ())
        for kernel in kernels:
            got = bench.call(kernel, x, offs, host, 0).double().cpu()
            order = bench._route[1][0][:, 0].cpu().numpy() if kernel == "megatron" else None
            ref = _reference(x, bench, host, order)
            out[kernel + ("" if act == "swiglu" else " relu2")] = float((got - ref).norm() / ref.norm())
    return out


def _reference(x, bench: ExpertBench, loads, experts=None) -> torch.Tensor:
    """float64 on the CPU: each token through its expert (token i to expert experts[i], else the tokens
    sorted by expert, loads[g] rows each), weights the first G of the pool -> [T, H]."""
    xr = x.double().cpu()
    if experts is None:
        experts = np.repeat(np.arange(len(loads)), loads)
    ref = torch.empty_like(xr)
    for g in range(len(loads)):
        rows = torch.as_tensor(np.flatnonzero(experts == g))
        up = xr[rows] @ bench.w1[g].double().cpu().T
        if bench.shape.act == "relu2":  # written out here, not ``activate``: the check is independent
            h = up.clamp(min=0) ** 2
        else:
            gate, lin = up[:, : bench.shape.width], up[:, bench.shape.width :]
            h = gate * torch.sigmoid(gate) * lin
        ref[rows] = h @ bench.w2[g].double().cpu().T
    return ref


def megatron_status(device="cuda") -> tuple[bool, str]:
    """(available, one line): whether Megatron-Core's fused MoE (ReLU^2 experts) can run here, and why its
    SwiGLU grouped MLP (TEGroupedMLP) does not."""
    from dodoco.compute.megatron import FUSED, fused_status

    why = fused_status(None, device)
    try:
        import transformer_engine  # noqa: F401

        te = "Transformer Engine imports, but DODOCO does not drive TEGroupedMLP (its GEMM is Transformer Engine's)"
    except Exception as exc:  # noqa: BLE001 - any import failure means: not here
        te = f"TEGroupedMLP needs Transformer Engine, which does not import here ({type(exc).__name__})"
    if why:
        return False, f"{why}; SwiGLU experts: {te}"
    return True, f"megatron: {FUSED} measures ReLU^2 experts; SwiGLU experts: {te}"
