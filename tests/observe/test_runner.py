"""observe: run directories, resume after interruption, refusal of a different run, bad input."""

import json

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.models.load import load_model
from dodoco.observe import runner
from dodoco.store import open_run, validate_run


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny:deepseek_moe")


def _observe(tiny, out, **kw):
    args = dict(seq_len=32, sequences=12, out=out, batch_size=4, quiet=True)
    args.update(kw)
    return runner.observe(tiny, args.pop("conditions", ["prose"]), **args)


def test_run_directory_contents(tiny, tmp_path):
    (path,) = _observe(tiny, tmp_path, conditions=["code"], traces=True)
    run = open_run(path)
    assert run.counts.shape == (12, 3, 64) and run.counts.dtype == np.uint32
    np.testing.assert_array_equal(run.counts.sum(axis=2), np.full((12, 3), 32 * 6))
    topk, offsets = run.tokens()
    assert topk.shape == (12 * 32, 3, 6) and offsets[-1] == 12 * 32
    m = run.manifest
    assert (m.routing.E, m.routing.K, m.routing.L, m.routing.layer_ids) == (64, 6, 3, (1, 2, 3))
    assert m.condition.provenance["sample_sha256"]
    assert m.details["batch_invariance"]["decisions"] == 4 * 32 * 3 * 6
    assert set(m.files) == {"counts.npy", "seq_tokens.npy", "tokens.npy", "token_offsets.npy"}
    assert validate_run(path) == []


def test_interrupted_run_resumes(tiny, tmp_path, monkeypatch):
    (ref,) = _observe(tiny, tmp_path / "ref")
    calls = []
    real = runner._forward_fn

    def failing(model):
        forward = real(model)

        def f(ids):
            calls.append(len(ids))
            if len(calls) == 2:
                raise KeyboardInterrupt
            forward(ids)

        return f

    monkeypatch.setattr(runner, "_forward_fn", failing)
    with pytest.raises(KeyboardInterrupt):
        _observe(tiny, tmp_path / "cut")
    cut = tmp_path / "cut" / "prose-L32"
    assert json.loads((cut / "manifest.json").read_text())["status"] == "running"
    assert len(list((cut / "_parts").glob("part-*.npz"))) == 1
    monkeypatch.setattr(runner, "_forward_fn", real)
    resumed = []
    monkeypatch.setattr(runner, "_forward_fn", lambda m: lambda ids: (resumed.append(len(ids)), real(m)(ids)))
    monkeypatch.setattr(runner, "_invariance", lambda *a: None)
    _observe(tiny, tmp_path / "cut")
    assert resumed == [4, 4]  # only the two missing batches ran
    np.testing.assert_array_equal(open_run(cut).counts, open_run(ref).counts)
    assert not (cut / "_parts").exists()


def test_finished_run_is_skipped(tiny, tmp_path, monkeypatch):
    _observe(tiny, tmp_path)
    monkeypatch.setattr(runner, "_forward_fn", lambda m: pytest.fail("model ran again"))
    _observe(tiny, tmp_path)


def test_different_run_refused_unless_overwrite(tiny, tmp_path):
    _observe(tiny, tmp_path)
    with pytest.raises(DodocoError, match=r"holds a different run \(sequences 12 vs 8\).*--overwrite"):
        _observe(tiny, tmp_path, sequences=8)
    (path,) = _observe(tiny, tmp_path, sequences=8, overwrite=True)
    assert open_run(path).counts.shape[0] == 8


def test_source_too_small_says_how_many(tiny, tmp_path):
    src = tmp_path / "small.txt"
    src.write_text("just a few words of text " * 10)
    with pytest.raises(DodocoError, match=r"enough for \d+ sequences of 32, not 500"):
        _observe(tiny, tmp_path / "o", conditions=[f"file:{src}"], sequences=500)


def test_unknown_condition_did_you_mean(tiny, tmp_path):
    with pytest.raises(DodocoError, match="unknown condition 'prosa': did you mean 'prose'"):
        _observe(tiny, tmp_path, conditions=["prosa"])


def test_local_jsonl_condition(tiny, tmp_path):
    src = tmp_path / "docs.jsonl"
    words = [" ".join(f"word{i * 200 + j}" for j in range(200)) for i in range(10)]
    src.write_text("\n".join(json.dumps({"text": f"document {i}: {w}"}) for i, w in enumerate(words)))
    (path,) = _observe(tiny, tmp_path / "o", conditions=[f"file:{src}"], sequences=4)
    assert open_run(path).manifest.condition.provenance["source"].startswith("local files")


def test_mock_conditions(tiny):
    ids, _ = runner._condition_ids(tiny, "mock-ramp", 8, 3, 0)
    np.testing.assert_array_equal(ids[1], np.arange(8, 16))
    ids, prov = runner._condition_ids(tiny, "mock-uniform", 64, 4, 0)
    assert ids.max() < tiny.tokenizer.vocab_size and prov["seed"] == 0


def test_corrupt_run_named_by_validate(tiny, tmp_path):
    (path,) = _observe(tiny, tmp_path)
    data = (path / "counts.npy").read_bytes()
    (path / "counts.npy").write_bytes(data[: len(data) // 2])
    problems = validate_run(path)
    assert problems and problems[0].startswith(f"counts.npy: {len(data) // 2} bytes but the manifest says {len(data)}")
    flipped = bytearray(data)
    flipped[-1] ^= 1  # same size, one bit changed
    (path / "counts.npy").write_bytes(bytes(flipped))
    assert validate_run(path)[0].startswith("counts.npy: checksum mismatch")
    with pytest.raises(DodocoError, match="does not match its checksum"):
        open_run(path).counts
    (path / "manifest.json").write_text("{not json")
    assert "manifest.json is corrupt" in validate_run(path)[0]


def test_remote_code_needs_flag(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "deepseek",
                "architectures": ["DeepseekForCausalLM"],
                "auto_map": {
                    "AutoConfig": "configuration_deepseek.DeepseekConfig",
                    "AutoModelForCausalLM": "modeling_deepseek.DeepseekForCausalLM",
                },
            }
        )
    )
    with pytest.raises(DodocoError, match="remote code: rerun with --trust-remote-code"):
        load_model(str(tmp_path))


def test_cli_one_line_errors(tmp_path, capsys):
    from dodoco.cli import main

    assert (
        main(
            [
                "observe",
                "--model",
                "tiny:qwen4",
                "--conditions",
                "prose",
                "--seq-len",
                "8",
                "--sequences",
                "1",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown tiny family 'qwen4': did you mean 'qwen3_moe'" in err
    assert main(["validate", str(tmp_path / "nothing")]) == 2  # no such run: an argument error


def test_other_weights_are_a_different_run(tiny, tmp_path):
    import dataclasses

    _observe(tiny, tmp_path)
    retrained = dataclasses.replace(tiny, info=dict(tiny.info, identity={"digest": "sha256:of-new-weights"}))
    with pytest.raises(DodocoError, match="different run.*weights"):
        _observe(retrained, tmp_path)


def test_config_file_gives_the_flags_and_flags_win(tmp_path, capsys):
    from dodoco.cli import main

    toml = tmp_path / "observe.toml"
    toml.write_text(
        'model = "tiny:qwen3_moe"\nconditions = ["prose"]\nseq-len = 16\nsequences = 8\n'
        "batch_size = 4\ninvariance = false\n"
    )
    assert main(["observe", "--config", str(toml), "--sequences", "4", "--out", str(tmp_path / "o")]) == 0
    run = open_run(tmp_path / "o" / "prose-L16")
    assert run.counts.shape[0] == 4 and run.manifest.identity["batch_size"] == 4
    assert run.manifest.details["batch_invariance"] is None
    capsys.readouterr()
    toml.write_text('model = "tiny:qwen3_moe"\nbatch-sizes = 4\n')
    assert (
        main(
            [
                "observe",
                "--config",
                str(toml),
                "--conditions",
                "prose",
                "--seq-len",
                "16",
                "--sequences",
                "4",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key batch_sizes" in err and "batch_size" in err
