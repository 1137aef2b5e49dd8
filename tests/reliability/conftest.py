"""Fixtures of the fault-injection tests: engine dumps, a small observed run, snapshots of folders."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def engine_dumps(tmp_path_factory):
    """name -> truth dict of every writer of scripts/make_ingest_fixtures.py (valid engine dumps)."""
    spec = importlib.util.spec_from_file_location("make_ingest_fixtures", ROOT / "scripts" / "make_ingest_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_ingest_fixtures", module)
    spec.loader.exec_module(module)
    root = tmp_path_factory.mktemp("engine-dumps")
    out = {}
    for name, writer in module.WRITERS.items():
        (root / name).mkdir()
        out[name] = writer(root / name)
    return out


@pytest.fixture
def cli(capsys):
    """cli(*argv) -> (exit code, stderr stripped): the dodoco CLI in this process. Anything but a
    DodocoError escapes main() and fails the test, so passing means no traceback."""
    from dodoco.cli import main

    def run(*argv):
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        return rc, capsys.readouterr().err.strip()

    return run


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Local checkpoint folders: ``moe`` (tiny qwen3_moe with the zoo tokenizer, 8192 ids) and broken
    copies of it: ``notok`` (no tokenizer files), ``noweights``, ``truncated`` (weights cut), ``shard``
    (an index naming a missing shard), ``dense`` (a Llama: no MoE layer), ``smallvocab`` (a 100-token
    tokenizer), ``unk`` (a word-level tokenizer that reads every real word as [UNK])."""
    import shutil

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from dodoco.models.tiny import build_tiny
    from dodoco.models.zoo import zoo_root

    root = tmp_path_factory.mktemp("checkpoints")
    tok = PreTrainedTokenizerFast(tokenizer_file=str(zoo_root() / "tokenizer.json"), eos_token="<|endoftext|>")
    build_tiny("qwen3_moe", 8192, seed=0).save_pretrained(root / "moe")
    tok.save_pretrained(root / "moe")
    out = {"moe": root / "moe"}

    def copy(name):
        out[name] = root / name
        shutil.copytree(root / "moe", out[name])
        return out[name]

    for f in copy("notok").glob("tokenizer*"):
        f.unlink()
    (copy("noweights") / "model.safetensors").unlink()
    w = copy("truncated") / "model.safetensors"
    w.write_bytes(w.read_bytes()[:4096])
    (copy("shard") / "model.safetensors").rename(out["shard"] / "model-00001-of-00002.safetensors")
    (out["shard"] / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})
    )
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=8192,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    ).save_pretrained(root / "dense")
    tok.save_pretrained(root / "dense")
    out["dense"] = root / "dense"
    for name, vocab in (("smallvocab", 100), ("unk", 8192)):
        words = {"[UNK]": 0, **{f"zzq{i}": i + 1 for i in range(vocab - 1)}}
        wl = Tokenizer(models.WordLevel(words, unk_token="[UNK]"))
        wl.pre_tokenizer = pre_tokenizers.Whitespace()
        for f in copy(name).glob("tokenizer*"):
            f.unlink()
        PreTrainedTokenizerFast(tokenizer_object=wl, unk_token="[UNK]").save_pretrained(out[name])
    return out


@pytest.fixture(scope="session")
def traced_runs(tmp_path_factory):
    """A finished observe folder with token traces and metrics: tiny qwen3_moe on mock-uniform and
    prose, 32 sequences of 32 tokens (runs/mock-uniform-L32, runs/prose-L32). Observed once for the
    whole session: copy it before changing anything (``sandbox``)."""
    from dodoco.observe.runner import observe

    out = tmp_path_factory.mktemp("traced") / "runs"
    observe(
        "tiny:qwen3_moe",
        ["mock-uniform", "prose"],
        seq_len=32,
        sequences=32,
        batch_size=8,
        out=out,
        quiet=True,
        invariance=False,
        traces=True,
    )
    from dodoco.analysis import AnalyzeConfig, analyze

    analyze(AnalyzeConfig(runs=(str(out),)))  # metrics.parquet, listed in each manifest (dodoco analyze)
    return out


@pytest.fixture
def sandbox(traced_runs, tmp_path):
    """tmp/runs: a copy of ``traced_runs``; tmp/outside: files of the user's that no command may
    change (``sandbox.outside``); ``sandbox.run``: the prose run."""
    import shutil
    from types import SimpleNamespace

    shutil.copytree(traced_runs, tmp_path / "runs")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("the user's own file\n")
    (outside / "part-000000000-8-0123456789abcdef.npz").write_bytes(b"not a part of any run")
    (outside / ".counts.npy.abcd1234.tmp").write_bytes(b"named like a temp file, but the user's")
    return SimpleNamespace(root=tmp_path, runs=tmp_path / "runs", run=tmp_path / "runs" / "prose-L32", outside=outside)


@pytest.fixture
def cli3(capsys):
    """cli3(*argv) -> (exit code, stdout, stderr): the dodoco CLI in this process (see ``cli``)."""
    from dodoco.cli import main

    def run(*argv):
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return rc, out, err.strip()

    return run
