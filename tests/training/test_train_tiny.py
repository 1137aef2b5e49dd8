"""A tiny end-to-end training run: trains, evaluates mid-run, saves, reloads to the same held-out loss."""

import json

import numpy as np
import pytest
import torch

from dodoco.cli import main
from dodoco.models.zoo import build_zoo, zoo_tokenizer
from dodoco.training.data import eval_windows, read_texts, tokenize
from dodoco.training.train import evaluate


@pytest.mark.parametrize("family", ["deepseek_moe", "nemotron_h"])
def test_train_save_reload(family, tmp_path, capsys, make_data):
    data = make_data(tmp_path / "d")
    out = tmp_path / "out"
    argv = [
        "zoo",
        "train",
        "--family",
        family,
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        "3",
        "--warmup",
        "1",
        "--batch-size",
        "2",
        "--seq-len",
        "16",
        "--log-every",
        "1",
        "--eval-every",
        "1",
        "--save-every",
        "1",
    ]
    assert main(argv) == 0
    log = capsys.readouterr().err  # progress is a diagnostic: stderr
    assert "held-out loss" in log and "max/mean per layer" in log and "tok/s" in log
    folder = out / family
    record = json.loads((folder / "config.json").read_text())["dodoco_zoo"]
    assert record["steps"] == 3 and record["tokens_seen"] == 3 * 2 * 16
    history = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3] and "heldout_loss" in history[0]
    # the reloaded bf16 weights give the held-out loss the card reports (evaluated after rounding)
    model, saved = build_zoo(family, folder)
    held = eval_windows(tokenize(read_texts("heldout", str(data)), zoo_tokenizer()), 16, 64)
    assert evaluate(model, held, "cpu")["all"] == pytest.approx(saved["results"]["heldout_loss"], abs=1e-3)
    from dodoco.training.card import zoo_rows

    rows = {r["family"]: r for r in zoo_rows(out)}
    assert rows[family]["steps"] == 3 and rows[family]["heldout_loss"] == saved["results"]["heldout_loss"]
    assert sum(r["status"] == "missing" for r in rows.values()) == 4
    if family == "nemotron_h":  # aux-loss-free: the correction bias moved, in steps of the update rate
        bias = [b for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")]
        assert bias and all(b.dtype == torch.float32 for b in bias)
        moved = torch.cat(bias).abs()
        assert moved.max() > 0 and moved.max() <= 3 * 0.001 + 1e-7
        steps = torch.cat(bias) / 0.001  # each of 3 updates adds -1, 0 or +1 times the rate
        assert np.allclose(steps.numpy(), np.round(steps.numpy()), atol=1e-3)


def test_deterministic_and_resume_is_bitwise(tmp_path, make_data):
    """Two runs with one seed give the same bytes; a run stopped and resumed gives them too."""
    import dataclasses

    from dodoco.training.train import RunOptions, TrainConfig, train_family

    data = str(make_data(tmp_path / "d"))
    cfg = TrainConfig("qwen3_moe", steps=4, warmup=1, batch_size=2, seq_len=16)
    quiet = dict(data_dir=data, log_every=1, save_every=2, eval_windows=2)

    class Stop(Exception):
        pass

    def stop_at_3(message):
        if "step 3/4" in message:
            raise Stop

    for name in ("a", "b"):
        train_family(cfg, RunOptions(out=tmp_path / name, **quiet), log=lambda m: None)
    with pytest.raises(Stop):
        train_family(cfg, RunOptions(out=tmp_path / "c", **quiet), log=stop_at_3)
    assert not (tmp_path / "c" / "qwen3_moe" / "model.safetensors").exists()
    train_family(cfg, dataclasses.replace(RunOptions(out=tmp_path / "c", **quiet), resume=True), log=lambda m: None)
    weights = [(tmp_path / n / "qwen3_moe" / "model.safetensors").read_bytes() for n in "abc"]
    assert weights[0] == weights[1] == weights[2]
