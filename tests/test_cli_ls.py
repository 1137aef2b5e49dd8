from dodoco.cli import main


def test_ls_lists_everything(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one line per entry
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    for name in (
        "deepseek_v2",
        "nemotron_h",
        "experts-prehook",
        "gate-topk-output",
        "mock-unigram",
        "multilingual",
        "contiguous",
        "eplb",
        "sglang",
        "megatron",
    ):
        assert name in out
    assert "[steps, L, E]" in out  # rich markup must not swallow bracketed shapes
