"""Terminal tables: nothing wraps, narrow terminals drop columns with a note, pipes get plain text."""

import io

from rich.console import Console

from dodoco.report.tables import cell_text, print_table, table_columns

ROWS = [{"model": "zoo:deepseek_v2", "condition": "multilingual", "gini B=1": 0.5412, "gini B=8": 0.5401,
         "gini B=32": 0.53, "gini all": 0.1234, "max/mean B=8": 6.291, "max/mean all": 2.5, "batch": 0,
         "empty": None},
        {"model": "zoo:qwen3_5_moe", "condition": "mock-uniform", "gini B=1": 0.6412, "gini B=8": 0.6401,
         "gini B=32": 0.63, "gini all": 0.2234, "max/mean B=8": 16.291, "max/mean all": 3.5, "batch": 32,
         "empty": float("nan")}]


def _print(rows, width, terminal, columns=None):
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=terminal, color_system=None)
    print_table(rows, "routing imbalance", columns, console=console)
    return buf.getvalue()


def test_narrow_terminal_keeps_names_and_numbers_whole():
    cols = ["model", "condition", "max/mean B=8", "gini B=8", "gini B=1", "gini B=32", "gini all", "batch"]
    out = _print(ROWS, 80, True, cols)
    lines = out.splitlines()
    assert max(len(x.rstrip()) for x in lines) <= 80
    rows = [x for x in lines if "zoo:" in x]
    assert len(rows) == 2  # one line per row: nothing folded onto a second line
    assert "zoo:deepseek_v2" in rows[0] and "6.291" in rows[0] and "zoo:qwen3_5_moe" in rows[1]
    assert "left out to fit 80 columns: gini B=32, gini all, batch" in " ".join(out.split())


def test_very_narrow_terminal_keeps_the_first_column():
    out = _print(ROWS, 20, True)
    assert "zoo:deepseek_v2" in out and "zoo:qwen3_5_moe" in out
    assert "0.5412" not in out  # the numbers' columns left out, not cut


def test_pipe_gets_plain_aligned_text_with_every_column():
    out = _print(ROWS, 80, False)
    lines = out.splitlines()
    assert lines[0] == "routing imbalance"
    header, rule, first, second = lines[1:5]
    assert header.split("  ")[0] == "model" and "empty" not in header  # the all-empty column is left out
    assert len(first) > 80 and first.startswith("zoo:deepseek_v2") and first.endswith("all")  # batch 0 -> all
    assert second.endswith("32") and "16.29" in second
    assert len(header) == len(rule.rstrip())  # columns line up
    assert first.index("0.5412") + len("0.5412") == second.index("0.6412") + len("0.6412")  # right-aligned


def test_cell_text_and_columns():
    assert cell_text(0, "batch") == "all" and cell_text(0, "ep") == "0"
    assert cell_text(6.291) == "6.291" and cell_text(float("nan")) == "-" and cell_text(True) == "yes"
    assert cell_text(123456.7) == "123457" and cell_text([1, 2]) == "1,2"
    assert table_columns([{"a": 1, "b": None}, {"a": 2, "c": "x"}]) == ["a", "c"]
