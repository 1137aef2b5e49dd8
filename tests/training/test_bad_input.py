"""Bad input to zoo training and loading: each gets its one-line error."""

import json

import pytest

from dodoco.cli import main
from dodoco.errors import DodocoError

TINY = ["--batch-size", "2", "--seq-len", "16", "--steps", "2", "--warmup", "1", "--log-every", "1"]


def _err(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_unknown_family_did_you_mean(capsys):
    err = _err(capsys, ["zoo", "train", "--family", "qwen3moe", *TINY])
    assert "unknown zoo family 'qwen3moe'" in err and "did you mean 'qwen3_moe'" in err


def test_unknown_zoo_model_name():
    from dodoco.models.load import load_model

    with pytest.raises(DodocoError, match="did you mean 'nemotron_h'"):
        load_model("zoo:nemotron")


def test_training_data_folder_missing(capsys, tmp_path):
    err = _err(capsys, ["zoo", "train", "--family", "qwen3_moe", "--data", str(tmp_path / "nope"), *TINY])
    assert str(tmp_path / "nope") in err and "does not exist" in err


def test_training_data_domain_missing(capsys, tmp_path, make_data):
    folder = make_data(tmp_path / "d")
    (folder / "math.jsonl").unlink()
    err = _err(capsys, ["zoo", "train", "--family", "qwen3_moe", "--data", str(folder), *TINY])
    assert "domain 'math' is missing" in err and str(folder / "math.jsonl") in err


def test_training_data_too_small_names_the_size_needed(capsys, tmp_path, make_data):
    folder = make_data(tmp_path / "d", train_chars=30)
    err = _err(
        capsys,
        [
            "zoo",
            "train",
            "--family",
            "qwen3_moe",
            "--data",
            str(folder),
            "--batch-size",
            "64",
            "--seq-len",
            "16",
            "--steps",
            "2",
            "--warmup",
            "1",
        ],
    )
    # (batch 64 + one window per domain x 4) x seq_len 16 = 1088 tokens
    assert "needs at least 1088 tokens" in err and "--batch-size 64" in err


def test_resume_from_another_config_names_the_field(capsys, tmp_path):
    from dodoco.models.zoo import zoo_config, zoo_tokenizer
    from dodoco.training.train import TrainConfig, fingerprint

    out = tmp_path / "out"
    (out / "deepseek_moe").mkdir(parents=True)
    saved = fingerprint(
        TrainConfig("deepseek_moe", steps=2, warmup=1, batch_size=2, seq_len=16),
        zoo_config("deepseek_moe", zoo_tokenizer().vocab_size),
    )
    record_path = out / "deepseek_moe" / "checkpoint.json"
    record_path.write_text(json.dumps({"fingerprint": saved, "step": 1, "history": []}))
    base = ["zoo", "train", "--family", "deepseek_moe", "--out", str(out), "--resume", *TINY]
    err = _err(capsys, [*base, "--lr", "0.01"])
    assert "trained with --lr 0.003, this run asks --lr 0.01" in err
    # an architecture field that differs (as after a change of the zoo config)
    saved["moe_intermediate_size"] = 48
    record_path.write_text(json.dumps({"fingerprint": saved, "step": 1, "history": []}))
    err = _err(capsys, base)
    assert "moe_intermediate_size=48" in err and "moe_intermediate_size=32" in err


def test_bad_numbers(capsys):
    err = _err(capsys, ["zoo", "train", "--family", "qwen3_moe", "--steps", "5", "--warmup", "10"])
    assert "--warmup 10" in err and "--steps 5" in err
