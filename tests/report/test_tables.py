"""Terminal tables: nothing breaks a value; narrow terminals drop columns by priority (never the kept
ones), constant columns fold into a caption, provenance labels show their kind; pipes get plain text."""

import io
import re

from rich.console import Console

from dodoco.report.tables import cell_text, label_kind, layout, print_table, table_columns, to_csv, wrap_text

ROWS = [
    {
        "model": "zoo:deepseek_v2",
        "condition": "multilingual",
        "gini B=1": 0.5412,
        "gini B=8": 0.5401,
        "gini B=32": 0.53,
        "gini all": 0.1234,
        "max/mean B=8": 6.291,
        "max/mean all": 2.5,
        "batch": 0,
        "empty": None,
    },
    {
        "model": "zoo:qwen3_5_moe",
        "condition": "mock-uniform",
        "gini B=1": 0.6412,
        "gini B=8": 0.6401,
        "gini B=32": 0.63,
        "gini all": 0.2234,
        "max/mean B=8": 16.291,
        "max/mean all": 3.5,
        "batch": 32,
        "empty": float("nan"),
    },
]


def _print(rows, width, terminal, columns=None, **kw):
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=terminal, color_system=None)
    print_table(rows, "routing imbalance", columns, console=console, **kw)
    return buf.getvalue()


def test_narrow_terminal_drops_the_rightmost_unkept_columns_first():
    cols = ["model", "condition", "max/mean B=8", "gini B=8", "gini B=1", "gini B=32", "gini all", "batch"]
    out = _print(ROWS, 60, True, cols, keep=["model", "condition", "batch"])
    lines = out.splitlines()
    assert max(len(x) for x in lines) <= 60
    rows = [x for x in lines if "zoo:" in x]
    assert len(rows) == 2  # one line per row
    assert rows[0].startswith("zoo:deepseek_v2") and rows[0].rstrip().endswith("all")  # kept although last
    assert "6.291" in rows[0] and "0.5401" in rows[0]
    assert "left out to fit the terminal: gini B=1, gini B=32, gini all" in " ".join(out.split())


def test_kept_columns_that_do_not_fit_become_records_with_every_value():
    out = _print(ROWS, 40, True, keep=list(ROWS[0]))
    lines = out.splitlines()
    assert max(len(x) for x in lines) <= 40
    text = " ".join(out.split())
    for v in ("zoo:deepseek_v2", "gini B=32 0.5300", "max/mean B=8 16.29", "batch all", "gini all 0.2234"):
        assert v in text
    assert "left out" not in text


def test_constant_columns_fold_into_a_caption():
    rows = [{"model": "m", "seq_len": 256, "batch": b, "gini": g} for b, g in ((1, 0.5), (2, 0.25))]
    lines = layout(rows, "t", width=None)
    assert lines[:2] == ["t", "every row: model m, seq_len 256"]
    assert lines[2].split() == ["batch", "gini"]
    one = layout(rows[:1], "t", width=None)  # a single row folds nothing
    assert one[1].split() == ["model", "seq_len", "batch", "gini"]


def test_provenance_labels_show_their_kind_and_the_full_text_below():
    rows = [
        {"N": 8, "ms": 1.5, "nic": "-", "provenance": {"compute": "measured: H200 grouped_mm"}},
        {"N": 16, "ms": 2.5, "nic": "nominal (not measured): 50 GB/s", "provenance": {"compute": "nominal: FLOPs"}},
    ]
    lines = layout(rows, "t", width=80, labels=["nic"])
    text = "\n".join(lines)
    assert re.search(r"^ *8 +1\.500 +- +measured$", text, re.M) and re.search(
        r"16 +2\.500 +nominal +nominal$", text, re.M
    )
    assert "nic: nominal (not measured): 50 GB/s" in text and "compute_label: measured: H200 grouped_mm" in text
    csv = to_csv(rows)
    assert csv.splitlines()[0] == "N,ms,nic,compute_label" and "measured: H200 grouped_mm" in csv
    assert label_kind("calibrated: nvidia-h200-x8 (x)") == "calibrated" and label_kind("-") == "-"
    assert label_kind("nvidia-h200-x8 (NVIDIA H200)") == "nvidia-h200-x8" and label_kind("plain") == "plain"


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


def test_sentences_wrap_at_spaces_only():
    text = "per-expert max/mean 5.215 [5.042, 5.365] at N=4 and 5.017 [4.912, 5.121] at N=32, a 4.0% change"
    for width in (20, 33, 60):
        lines = wrap_text(text, width, "- ", "  ")
        assert " ".join(" ".join(lines).split()) == "- " + text  # nothing lost, nothing split
        assert all(len(x) <= width for x in lines)
    assert wrap_text(text, None) == [text]
    assert wrap_text("a /very/long/path/that/cannot/break here", 12) == [
        "a",
        "/very/long/path/that/cannot/break",
        "here",
    ]


def test_cell_text_and_columns():
    assert cell_text(0, "batch") == "all" and cell_text(0, "ep") == "0"
    assert cell_text(6.291) == "6.291" and cell_text(float("nan")) == "-" and cell_text(True) == "yes"
    assert cell_text(123456.7) == "123457" and cell_text([1, 2]) == "1,2"
    assert table_columns([{"a": 1, "b": None}, {"a": 2, "c": "x"}]) == ["a", "c"]
