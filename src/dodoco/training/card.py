"""Zoo model cards: the end of a zoo run (round to the shipped precision, evaluate held out, write
weights, config and card) and reading them back (``zoo_rows``: what ``dodoco zoo ls`` lists)."""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from pathlib import Path

from dodoco.models.tiny import FAMILIES
from dodoco.models.zoo import save_weights, spec, zoo_root, zoo_tokenizer
from dodoco.provenance import versions
from dodoco.store.atomic import sha256_file, write_bytes, write_json


def _command(cfg, opts) -> str:
    default = type(cfg)(cfg.family)  # the TrainConfig defaults
    flags = [
        f"--{f.name.replace('_', '-')} {getattr(cfg, f.name)}"
        for f in dataclasses.fields(cfg)
        if f.name != "family" and getattr(cfg, f.name) != getattr(default, f.name)
    ]
    return " ".join(
        [
            "dodoco zoo train --family",
            cfg.family,
            f"--steps {cfg.steps}",
            *[x for x in flags if not x.startswith("--steps")],
            f"--device {opts.device}",
        ]
    )


def zoo_rows(folder=None) -> list[dict]:
    """One row per zoo family found in ``folder`` (default: the shipped zoo): its card's record, or
    status "missing"."""
    from dodoco.models.zoo import ZOO

    root = Path(folder) if folder else zoo_root()
    rows = []
    for family in ZOO:
        config, weights = root / family / "config.json", root / family / "model.safetensors"
        if not config.is_file():
            rows.append({"family": family, "status": "missing"})
            continue
        rec = json.loads(config.read_text(encoding="utf-8")).get("dodoco_zoo", {})
        res = rec.get("results", {})
        rows.append(
            {
                "family": family,
                "status": "trained",
                "stands_for": rec.get("stands_for"),
                "mixer": rec.get("mixer"),
                "steps": rec.get("steps"),
                "tokens": rec.get("tokens_seen"),
                "heldout_loss": res.get("heldout_loss"),
                "heldout_ppl": res.get("heldout_ppl"),
                "balance": rec.get("balance", {}).get("method"),
                "mb": round(weights.stat().st_size / 1e6, 2) if weights.is_file() else None,
                "train_tokens_per_s": res.get("train_tokens_per_s"),
                "device": res.get("device"),
            }
        )
    return rows


def _data_record(data, windows, heldout) -> dict:
    from dodoco.conditions.samples import provenance

    files = provenance().get("files", {}) if data.data_dir is None else {}
    return {
        "source": "bundled text (dodoco/data/text)" if data.data_dir is None else data.data_dir,
        "train_tokens": {d: int(len(s)) for d, s in data.train.items()},
        "heldout_tokens_evaluated": {d: int(w.size) for d, w in heldout.items()},
        "text_sha256": {d: files.get(f"text/{d}.jsonl.gz", {}).get("sha256") for d in data.train},
        "windows_per_epoch": windows.per_epoch,
    }


def finish(model, cfg, opts, data, windows, heldout, history, steps_done, impl, wall_s, log, evaluate) -> dict:
    """Round weights to bf16, evaluate held out (``evaluate``: training's evaluation), write
    model.safetensors, config.json and README.md."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(p.dtype))  # evaluate exactly what ships
    final = evaluate(model, heldout, opts.device)
    folder = Path(opts.out) / cfg.family
    save_weights(model, folder / "model.safetensors")
    rates = [h["tokens_per_s"] for h in history if "tokens_per_s" in h]
    tokenizer = zoo_tokenizer()
    record = {
        "family": cfg.family,
        "stands_for": FAMILIES[cfg.family].real_model,
        "mixer": FAMILIES[cfg.family].mixer,
        "parameters": sum(p.numel() for p in model.parameters()),  # tied weights counted once
        "seed": cfg.seed,
        "steps": steps_done,
        "planned_steps": cfg.steps,
        "tokens_seen": steps_done * cfg.batch_size * cfg.seq_len,
        "epochs": round(windows.epochs(steps_done), 2),
        "train_config": dataclasses.asdict(cfg),
        "balance": dataclasses.asdict(spec(cfg.family).balance),
        "tokenizer": {
            "name": tokenizer.name,
            "vocab_size": tokenizer.vocab_size,
            "sha256": sha256_file(zoo_root() / "tokenizer.json"),
        },
        "data": _data_record(data, windows, heldout),
        "results": {
            "final_train_loss": history[-1]["loss"] if history else None,
            "heldout_loss": round(final["all"], 4),
            "heldout_ppl": round(math.exp(final["all"]), 2),
            "heldout_loss_per_domain": {d: round(v, 4) for d, v in final.items() if d != "all"},
            "final_max_mean_per_layer": history[-1]["max_mean"] if history else None,
            "train_tokens_per_s": round(sorted(rates)[len(rates) // 2], 1) if rates else None,
            "device": _device_name(opts.device),
            "experts_implementation": impl,
            "wall_s": round(wall_s, 1),
        },
        "weights_sha256": sha256_file(folder / "model.safetensors"),
        "command": _command(cfg, opts),
        "versions": versions("torch", "transformers"),
        "note": opts.note,
    }
    config = json.loads(model.config.to_json_string(use_diff=False))
    config.update(architectures=[type(model).__name__], dtype="bfloat16", dodoco_zoo=record)
    write_json(folder / "config.json", config)
    write_bytes(folder / "README.md", model_card(record, config).encode("utf-8"))
    write_bytes(folder / "train_log.jsonl", "".join(json.dumps(h) + "\n" for h in history).encode())
    log(
        f"{cfg.family}: held-out loss {final['all']:.3f} (ppl {math.exp(final['all']):.1f}) after {steps_done} steps; "
        f"wrote {folder}"
    )
    return record


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()})"


def model_card(rec: dict, config: dict) -> str:
    """The README.md of one zoo model."""
    r, t, b = rec["results"], rec["train_config"], rec["balance"]
    fam = FAMILIES[rec["family"]]
    params = rec["parameters"]
    note = f"; {rec['note']}" if rec.get("note") else ""
    per_domain = ", ".join(f"{d} {v:.3f}" for d, v in r["heldout_loss_per_domain"].items())
    balance = (
        f"auxiliary loss, alpha {b['alpha']} per MoE layer, computed per {b['scope']}"
        if b["method"] == "aux"
        else f"aux-loss-free bias updates, rate {b['rate']} per step"
    )
    return f"""# zoo:{rec["family"]} ({fam.mixer})

A small mixture-of-experts language model trained by DODOCO on its bundled text, so that routing
can be observed on a laptop with **learned** routers. It keeps the routing shape of
**{fam.real_model}** (routed experts E={fam.E}, top-k K={fam.K}, {fam.shared_experts} shared
expert(s), {fam.routing}, the real dense/MoE layer pattern) at toy width. It is **not** that
checkpoint and not the paper's: its numbers show what learned routing at this scale does, and the
results page (docs/zoo-results.md) says where they differ from the large models.

| | |
|---|---|
| transformers class | `{config["architectures"][0]}` (model_type `{config["model_type"]}`) |
| hidden size / layers | {config.get("hidden_size")} / {layer_pattern(config)} |
| expert width (moe_intermediate_size) | {config.get("moe_intermediate_size")} |
| parameters | {params:,} (bf16 weights) |
| tokenizer | shared zoo BPE, {rec["tokenizer"]["vocab_size"]} tokens (see below) |
| load balancing | {balance} ({b["source"]}) |
| data | train split of the bundled prose, code, math, multilingual text, mixed; {sum(rec["data"]["train_tokens"].values()):,} tokens |
| steps x batch x seq_len | {rec["steps"]} x {t["batch_size"]} x {t["seq_len"]} ({rec["tokens_seen"]:,} tokens, {rec["epochs"]} epochs) |
| optimiser | AdamW lr {t["lr"]}, warm-up {t["warmup"]}, cosine to {t["min_lr_ratio"]} x lr, weight decay {t["weight_decay"]} |
| seed | {rec["seed"]} |
| final train loss | {r["final_train_loss"]:.3f} |
| **held-out loss / perplexity** | **{r["heldout_loss"]:.3f} / {r["heldout_ppl"]:.1f}** (bf16 weights as shipped) |
| held-out loss per domain | {per_domain} |
| expert load max/mean per MoE layer (last interval) | {r["final_max_mean_per_layer"]} |
| training throughput | {r["train_tokens_per_s"]:,} tokens/s on {r["device"]} (experts: {r["experts_implementation"]}){note} |

Held-out text is the `heldout` split of the same files (split by a hash of each document id), never
seen in training; DODOCO's real-text conditions read only that split.

Tokenizer: `dodoco/data/zoo/tokenizer.json` (sha256 {rec["tokenizer"]["sha256"][:16]}...), a byte-level
BPE of {rec["tokenizer"]["vocab_size"]} tokens trained by `scripts/train_zoo_tokenizer.py` on the train split
of the bundled text, shared by the five zoo models. A real model's tokenizer (Qwen3: 151,669 tokens)
would put ~9.7M embedding parameters into each model and the five far over the 25 MB the package
allows.

Reproduce: `{rec["command"]}` (deterministic given the seed and steps; bitwise on CPU, on a GPU up
to its kernels' non-determinism). Versions: {", ".join(f"{k} {v}" for k, v in rec["versions"].items())}.
Weights sha256 {rec["weights_sha256"]}.
"""


def layer_pattern(config: dict) -> str:
    """``"4: dense, moe, moe, moe"``: the layer count and which layers are MoE (or the mixer kinds)."""
    if config.get("layers_block_type"):  # Nemotron-H: mixer per block
        kinds = [
            {"linear_attention": "mamba2", "full_attention": "attention"}.get(k, k) for k in config["layers_block_type"]
        ]
    else:
        n = int(config["num_hidden_layers"])
        dense = set(config.get("mlp_only_layers") or []) | set(range(int(config.get("first_k_dense_replace") or 0)))
        kinds = ["dense" if i in dense else "moe" for i in range(n)]
        if config.get("layer_types") and len(set(config["layer_types"])) > 1:  # Qwen3.5: attention kind per layer
            names = {"linear_attention": "gdn", "full_attention": "attention"}
            kinds = [f"{names.get(t, t)}+{k}" for t, k in zip(config["layer_types"], kinds)]
    return f"{len(kinds)}: {', '.join(kinds)}"
