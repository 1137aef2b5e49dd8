"""Train a zoo model: causal LM on the mixed train split, with the family's load balancing.

``python -m dodoco.training.train --all --device cuda --out DIR`` is ``dodoco zoo train`` (same arguments).
Deterministic given the seed and the step count (bitwise on CPU; on a GPU up to its kernels' own
non-determinism): batches depend only on (seed, step), weights on the seed, and ``--time-budget``
only chooses the step count, during warm-up (whose learning rate does not depend on it), so the
card's ``--steps N`` reproduces the run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.models.zoo import arch_fields, first_difference, spec, zoo_config, zoo_tokenizer
from dodoco.store.atomic import write_bytes, write_json
from dodoco.training import balance as bal
from dodoco.training.data import TrainWindows, eval_windows, read_texts, tokenize
from dodoco.training.settings import TrainSettings


@dataclass(frozen=True)
class TrainConfig(TrainSettings):
    """What defines a training run (everything but where and how fast it runs)."""

    family: str
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0


@dataclass(frozen=True)
class RunOptions:
    """How a run executes: device, output, cadence; none of it changes the trained weights."""

    out: Path
    device: str = "cpu"
    resume: bool = False
    data_dir: str | None = None
    time_budget: float = 0.0  # seconds per family; 0 = run cfg.steps
    log_every: int = 50
    eval_every: int = 400
    save_every: int = 200
    eval_windows: int = 64  # held-out windows per domain for the final evaluation
    note: str = ""  # how the run was set up, for the model card (e.g. trained side by side)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``cfg.warmup`` steps, then cosine decay to ``min_lr_ratio * lr`` at ``cfg.steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min((step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1), 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def fingerprint(cfg: TrainConfig, model_config) -> dict:
    """Fields a checkpoint must share with the run that resumes it."""
    return {
        **dataclasses.asdict(cfg),
        **arch_fields(model_config),
        "balance": dataclasses.asdict(spec(cfg.family).balance),
    }


class Data:
    """Tokenized train and held-out streams, shared by the families of one invocation."""

    def __init__(self, data_dir: str | None):
        tokenizer = zoo_tokenizer()
        self.train = tokenize(read_texts("train", data_dir), tokenizer)
        self.heldout = tokenize(read_texts("heldout", data_dir), tokenizer)
        self.data_dir = data_dir


def build_model(family: str, seed: int, device: str):
    import torch
    from transformers import AutoModelForCausalLM

    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls: weights stay fp32
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(zoo_config(family, zoo_tokenizer().vocab_size), dtype=torch.float32)
    return model.to(device)


def pick_experts_impl(model, sample, device: str, log) -> str:
    """On a GPU, the faster of grouped_mm and batched_mm on ``sample`` (eager if neither runs); CPU: as set.

    Each is timed on three forward+backward passes; gradients are dropped, so the weights do not change.
    """
    import torch

    if not device.startswith("cuda"):
        return model.config._experts_implementation
    best = None
    for impl in ("grouped_mm", "batched_mm", "eager"):
        if impl == "eager" and best:
            break  # the Python loop over experts is only the fallback
        try:
            model.set_experts_implementation(impl)
            times = []
            for _ in range(3):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                model(input_ids=sample, labels=sample, use_cache=False).loss.backward()
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)
            if best is None or min(times) < best[1]:
                best = (impl, min(times))
        except Exception as exc:  # an implementation this torch/GPU lacks: try the next
            log(f"  experts implementation {impl} unavailable: {type(exc).__name__}: {str(exc)[:120]}")
            model.zero_grad(set_to_none=True)
    assert best, "no experts implementation ran"
    model.set_experts_implementation(best[0])
    log(f"  experts implementation {best[0]} ({best[1] * 1000:.0f} ms per step of the probe batch)")
    return best[0]


def evaluate(model, windows: dict[str, np.ndarray], device: str, batch: int = 32) -> dict[str, float]:
    """Mean next-token loss per held-out domain and over all (``"all"``, token-weighted)."""
    import torch

    was_training = model.training
    model.eval()
    out, total, n = {}, 0.0, 0
    with torch.inference_mode():
        for d, ids in windows.items():
            losses = []
            for i in range(0, len(ids), batch):
                x = torch.as_tensor(ids[i : i + batch], device=device)
                losses.append(float(model(input_ids=x, labels=x, use_cache=False).loss) * len(x))
            out[d] = sum(losses) / len(ids)
            total, n = total + sum(losses), n + len(ids)
    out["all"] = total / n
    model.train(was_training)
    return out


def _optimizer(model, cfg: TrainConfig):
    import torch

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    other = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
    )


def check_resume(folder: Path, fp: dict) -> dict | None:
    """The checkpoint record in ``folder`` if it matches ``fp``; error naming the first differing field."""
    path = folder / "checkpoint.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    diff = first_difference(record["fingerprint"], fp)
    if diff:
        field, saved, asked = diff
        if field in {f.name for f in dataclasses.fields(TrainConfig)}:
            flag = f"--{field.replace('_', '-')}"
            raise DodocoError(
                f"checkpoint {folder}/checkpoint.pt was trained with {flag} {saved}, this run asks "
                f"{flag} {asked}: rerun with {flag} {saved}, or use another --out, or drop --resume"
            )
        raise DodocoError(
            f"checkpoint {folder}/checkpoint.pt has {field}={saved!r}, the zoo config of this dodoco has "
            f"{field}={asked!r}: use another --out, or drop --resume to train afresh"
        )
    return record


def save_checkpoint(folder: Path, model, optimizer, step: int, fp: dict, history: list) -> None:
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, buf)
    write_bytes(folder / "checkpoint.pt", buf.getvalue())
    write_json(folder / "checkpoint.json", {"fingerprint": fp, "step": step, "history": history})


def _steps_for_budget(cfg: TrainConfig, step_s: float, spent: float, budget: float) -> int:
    """Steps that fit ``budget`` seconds at ``step_s`` per step, 8% kept for evaluation and saving."""
    left = budget * 0.92 - spent
    return int(max(cfg.warmup, min(cfg.steps, cfg.warmup + left / max(step_s, 1e-6))))


def _resume_record(cfg: TrainConfig, opts: RunOptions, folder: Path):
    """(cfg, checkpoint record or None); with --time-budget the checkpoint's step count is adopted."""
    config = zoo_config(cfg.family, zoo_tokenizer().vocab_size)
    path = folder / "checkpoint.json"
    if not opts.resume or not path.is_file():
        return cfg, None
    if opts.time_budget:
        cfg = dataclasses.replace(cfg, steps=json.loads(path.read_text(encoding="utf-8"))["fingerprint"]["steps"])
    return cfg, check_resume(folder, fingerprint(cfg, config))


def _restore(folder: Path, model, optimizer) -> None:
    import torch

    state = torch.load(folder / "checkpoint.pt", map_location=next(model.parameters()).device, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])


class Meter:
    """Per-interval sums: LM loss, aux loss, expert load per layer [L, E], tokens and seconds."""

    def __init__(self, L: int, E: int, device):
        import torch

        self.zero = lambda: (
            torch.zeros((), device=device),
            torch.zeros((), device=device),
            torch.zeros(L, E, device=device),
        )
        self.lm, self.aux, self.load = self.zero()
        self.steps, self.tokens, self.t0 = 0, 0, time.perf_counter()

    def add(self, lm, aux, loads, tokens: int) -> None:
        self.lm += lm.detach()
        if aux is not None:
            self.aux += aux.detach()
        self.load += loads
        self.steps, self.tokens = self.steps + 1, self.tokens + tokens

    def flush(self, step: int, lr: float) -> dict:
        """The interval's record (one host sync), then reset."""
        seconds = time.perf_counter() - self.t0
        ratio = (self.load.max(dim=-1).values / self.load.mean(dim=-1).clamp_min(1e-9)).tolist()
        rec = {
            "step": step,
            "lr": lr,
            "loss": float(self.lm) / self.steps,
            "aux": float(self.aux) / self.steps,
            "max_mean": [round(r, 3) for r in ratio],
            "tokens_per_s": round(self.tokens / seconds, 1),
        }
        self.lm, self.aux, self.load = self.zero()
        self.steps, self.tokens, self.t0 = 0, 0, time.perf_counter()
        return rec


def _train_step(model, optimizer, tap, x, cfg: TrainConfig, step: int):
    """One optimizer step; returns (lm loss, aux loss or None, chosen experts per layer)."""
    import torch

    balance = spec(cfg.family).balance
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    out = model(input_ids=x, labels=x, use_cache=False)
    calls = tap.take()
    assert len(calls) == len(tap.routers), f"{len(calls)} router calls in one step, {len(tap.routers)} routers"
    aux = bal.balance_loss(calls, balance, x.shape[0], tap.E, tap.K)
    (out.loss if aux is None else out.loss + aux).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    index = [c[1].detach() for c in calls]
    if balance.method == "bias":
        for router, i in zip(tap.routers, index):
            bal.update_bias(router, i, balance.rate)
    return out.loss, aux, index


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


class StepBudget:
    """``--time-budget``: time steps 10..warmup, then fix ``cfg.steps`` to what fits; stop at 1.15 x budget."""

    def __init__(self, opts: RunOptions, started: float, fixed: bool):
        self.budget, self.device, self.started = opts.time_budget, opts.device, started
        self.fixed = fixed or not self.budget
        self.mark = None

    def expired(self, family: str, step: int, log) -> bool:
        if self.budget and time.perf_counter() - self.started > 1.15 * self.budget:
            log(f"{family}: stopped at step {step}: past 1.15 x --time-budget {self.budget:.0f} s")
            return True
        return False

    def before(self, step: int, cfg: TrainConfig, log) -> TrainConfig:
        """``cfg``, with its step count fixed once warm-up ends."""
        if self.fixed:
            return cfg
        if step == min(10, cfg.warmup - 1):
            _sync(self.device)
            self.mark = (step, time.perf_counter())
        if step == cfg.warmup:
            _sync(self.device)
            step_s = (time.perf_counter() - self.mark[1]) / (step - self.mark[0])
            cfg = dataclasses.replace(
                cfg, steps=_steps_for_budget(cfg, step_s, time.perf_counter() - self.started, self.budget)
            )
            self.fixed = True
            log(
                f"{cfg.family}: {step_s * 1000:.0f} ms/step -> {cfg.steps} steps fit --time-budget "
                f"{self.budget:.0f} s (reproduce with --steps {cfg.steps})"
            )
        return cfg


def train_family(cfg: TrainConfig, opts: RunOptions, data=None, log=print) -> dict:
    """Train ``cfg.family`` and write ``opts.out/<family>/{model.safetensors,config.json,README.md}``.

    ``data``: a ``Data``, a callable returning one (called after the checkpoint check), or None.
    Returns the ``dodoco_zoo`` record written into config.json (training, data, results).
    """
    import torch

    spec(cfg.family)
    folder = Path(opts.out) / cfg.family
    cfg, record = _resume_record(cfg, opts, folder)  # a mismatching checkpoint fails before any work
    started = time.perf_counter()
    data = data() if callable(data) else data or Data(opts.data_dir)
    windows = TrainWindows(data.train, cfg.seq_len, cfg.batch_size, cfg.seed)
    heldout = eval_windows(data.heldout, cfg.seq_len, opts.eval_windows)
    model = build_model(cfg.family, cfg.seed, opts.device).train()
    optimizer = _optimizer(model, cfg)
    history = record["history"] if record else []
    if record:
        _restore(folder, model, optimizer)
        log(f"{cfg.family}: resuming at step {record['step']} of {cfg.steps}")
    impl = pick_experts_impl(model, torch.as_tensor(windows.batch(0), device=opts.device), opts.device, log)
    tap = bal.RouterTap(model)
    meter = Meter(len(tap.routers), tap.E, opts.device)
    budget = StepBudget(opts, started, fixed=record is not None and record["step"] >= cfg.warmup)
    step = record["step"] if record else 0
    try:
        while step < cfg.steps and not budget.expired(cfg.family, step, log):
            cfg = budget.before(step, cfg, log)
            if step >= cfg.steps:
                break  # the budget fixed fewer steps than already done
            x = torch.as_tensor(windows.batch(step), device=opts.device)
            lm, aux, index = _train_step(model, optimizer, tap, x, cfg, step)
            meter.add(lm, aux, torch.stack([bal.expert_load(i, tap.E) for i in index]), x.numel())
            step += 1
            if step % opts.log_every == 0 or step == cfg.steps:
                history.append(_log_interval(meter, step, cfg, log))
                if step % opts.eval_every == 0 and step < cfg.steps:
                    history[-1]["heldout_loss"] = round(evaluate(model, heldout, opts.device)["all"], 4)
                    log(f"  step {step}: held-out loss {history[-1]['heldout_loss']:.3f}")
                    meter.t0 = time.perf_counter()
            if step % opts.save_every == 0 or step == cfg.steps:
                save_checkpoint(folder, model, optimizer, step, fingerprint(cfg, model.config), history)
    finally:
        tap.close()
    from dodoco.training.card import finish

    return finish(
        model, cfg, opts, data, windows, heldout, history, step, impl, time.perf_counter() - started, log, evaluate
    )


def _log_interval(meter: Meter, step: int, cfg: TrainConfig, log) -> dict:
    rec = meter.flush(step, lr_at(step - 1, cfg))
    worst = max(rec["max_mean"])
    log(
        f"{cfg.family} step {step}/{cfg.steps} loss {rec['loss']:.3f} aux {rec['aux']:.4f} "
        f"max/mean per layer {rec['max_mean']} (worst {worst:.2f}) {rec['tokens_per_s']:.0f} tok/s"
    )
    return rec
