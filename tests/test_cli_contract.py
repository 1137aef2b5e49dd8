"""The one CLI contract (README "The command-line contract"), enforced on every command:

- the README's table is the source: each command's parser has the flags the table says;
- every command's ``--json -`` output parses and is all of stdout;
- rendered in terminals of 60, 80, 120 and 200 columns, no line is wider than the terminal (a word
  longer than the terminal stays whole on its own line), so no value is ever broken, and every number
  printed in a table or a sentence equals one in the command's JSON;
- exit statuses: 2 for a usage mistake (one line on stderr), 3 for nothing to do (one line on stderr,
  valid JSON on stdout).
"""

import io
import json
import math
import re
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from dodoco.cli import build_parser, main
from dodoco.commands import NOTHING_TO_DO
from dodoco.findings.synthetic import skewed_counts, write_counts_run

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (60, 80, 120, 200)
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w])")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def contract_table() -> dict[str, dict]:
    """The README's contract table: command -> {json, out, config} as the table says."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("| command | prints |") :].split("\n\n")[0].splitlines()[2:]
    out = {}
    for line in block:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0].strip("`")] = {
            "json": cells[2] != "-",
            "out": cells[3] != "-",
            "config": cells[4] == "yes",
            "exit3": cells[5] != "-",
        }
    return out


def _subparser(parser, path: list[str]):
    for name in path:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return parser


def test_every_command_is_in_the_table_and_has_its_flags():
    table = contract_table()
    parser = build_parser()
    top = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    commands = {n for n in top.choices if n != "zoo"} | {"zoo ls", "zoo train"}
    assert set(table) == commands
    for name, want in table.items():
        p = _subparser(parser, name.split())
        flags = {o for a in p._actions for o in a.option_strings}
        assert ("--json" in flags) == want["json"], name
        assert ({"-o", "--out"} <= flags) == want["out"], name
        assert ("--config" in flags) == want["config"], name
        batch = next((a for a in p._actions if "--batch" in a.option_strings), None)
        assert batch is None or batch.help.startswith("sequences per rank per step B"), name


# ---------------------------------------------------------------- every command, run


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Small runs (two models' worth of conditions), a replay result and a dump to import."""
    root = tmp_path_factory.mktemp("contract")
    for cond, conc, seed in (("mock-uniform", None, 0), ("prose", 0.4, 1)):
        write_counts_run(
            root / "runs" / f"{cond}-L32",
            skewed_counts(64, 2, 16, assignments=64, concentration=conc, seed=seed),
            model="zoo:toy",
            condition=cond,
            seq_len=32,
            K=2,
        )
    np.save(root / "dump.npy", skewed_counts(12, 2, 8, assignments=40, concentration=0.3, seed=3).astype(np.int64))
    (root / "loads.json").write_text(json.dumps([[120, 0, 64], [30, 30, 30], [5]]))
    from dodoco.compute.model import ComputeModel

    h100 = (
        "h100",
        "NVIDIA H100 80GB HBM3",
        "grouped_mm",
        "linear",
        64,
        128,
        132,
    )  # gpu, device, kernel, form, tiles, SMs
    cal = ComputeModel(*h100, np.array([0.01, 0.002, 0.3, 0.0015, 0.0]), {"torch": "2.11.0", "date": "2026-12-06"})
    (root / "compute-cal.json").write_text(json.dumps(cal.to_dict()))
    replay = json.loads((ROOT / "bench" / "results" / "replay-n1-qwen3_moe-h2048.json").read_text())
    (root / "replay.json").write_text(json.dumps(replay))
    return root


def commands(w: Path) -> dict[str, list[str]]:
    """One argv per command, run in the world ``w`` (see ``world``)."""
    runs, prose = str(w / "runs"), str(w / "runs" / "prose-L32")
    return {**_data_commands(w, runs, prose), **_model_commands(w, runs, prose)}


def _data_commands(w: Path, runs: str, prose: str) -> dict[str, list[str]]:
    """The commands that observe, analyse, report, export and import runs."""
    return {
        "ls": ["ls"],
        "observe": [
            "observe",
            "--model",
            "tiny:qwen3_moe",
            "--conditions",
            "mock-uniform",
            "--seq-len",
            "16",
            "--sequences",
            "4",
            "--batch",
            "1,2",
            "-o",
            str(w / "observed"),
        ],
        "analyze": ["analyze", runs, "--ep", "2,4", "--placement", "contiguous,eplb", "--batch", "1,2"],
        "findings": ["findings", runs],
        "validate": ["validate", runs],
        "report": ["report", runs, "-o", str(w / "report"), "--quiet", "--attach", str(w / "replay.json")],
        "export neusim": ["export", "neusim", runs, "-o", str(w / "neusim.json")],
        "export traffic": ["export", "traffic", prose, "-o", str(w / "traffic.json"), "--max-steps", "2"],
        "import": ["import", "numpy", str(w / "dump.npy"), "-o", str(w / "imported"), "--top-k", "2", "--overwrite"],
    }


def _model_commands(w: Path, runs: str, prose: str) -> dict[str, list[str]]:
    """The commands that model a cluster: simulate, recommend, the zoo, compute."""
    return {
        "simulate": [
            "simulate",
            runs,
            "--cluster",
            "dgx-h200",
            "--ep",
            "2,4,8,16",
            "--max-steps",
            "2",
            "-o",
            str(w / "sim-full.json"),
        ],
        "recommend": [
            "recommend",
            "--hardware",
            "h200",
            "--ep",
            "2",
            "--run",
            prose,
            "--replay",
            str(w / "replay.json"),
        ],
        "zoo ls": ["zoo", "ls"],
        "compute": [
            "compute",
            "--loads",
            str(w / "loads.json"),
            "--gpu",
            "h100",
            "--shape",
            "qwen3-30b-a3b",
            "--calibration",
            str(w / "compute-cal.json"),
            "-o",
            str(w / "compute-full.json"),
        ],
    }


#: The columns each command exists for: they stay at every width (identifiers always stay too).
REQUIRED = {
    "analyze": ["model", "condition", "ep", "placement", "max_mean", "receiver_skew", "gini"],
    "simulate": ["dispatcher", "N", "dispatch_ms", "layer_ms", "nvlink", "nic"],
    "export neusim": ["regime", "measured_f", "measured_W", "effective_f", "effective_W"],
    "recommend": ["dispatcher", "status", "evidence"],
    "zoo ls": ["family", "heldout_loss"],
    "findings": ["finding", "verdict"],
    "report": ["finding", "verdict"],
}


def _run(argv, monkeypatch, capsys, width=None):
    from dodoco.report import build, tables

    if width and argv[0] == "report":  # the table printed is the verdicts': the HTML was built by the JSON run
        monkeypatch.setattr(build, "write_report", lambda findings, out, *a, **k: Path(out) / "report.html")
    titles = []
    real = tables.layout
    monkeypatch.setattr(
        tables, "layout", lambda rows, title, *a, **k: titles.append(title) or real(rows, title, *a, **k)
    )
    if width:
        monkeypatch.setenv("COLUMNS", str(width))
        monkeypatch.setenv("TTY_COMPATIBLE", "1")
        monkeypatch.setenv("NO_COLOR", "1")
    rc = main(argv)
    out, err = capsys.readouterr()
    monkeypatch.undo()
    return rc, ANSI.sub("", out), err, titles


def _numbers(obj, into: set) -> set:
    if isinstance(obj, bool) or obj is None:
        return into
    if isinstance(obj, (int, float)):
        into.add(float(obj))
    elif isinstance(obj, str):
        into.update(float(t) for t in NUMBER.findall(obj))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _numbers(k, into)
            _numbers(v, into)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _numbers(v, into)
    return into


def _matches(token: str, known: np.ndarray) -> bool:
    x = float(token)
    if "e" in token:
        tol = abs(x) * 5e-4
    else:
        tol = 0.5 * 10 ** -(len(token.split(".")[1]) if "." in token else 0)
    return bool(np.any(np.abs(known - x) <= tol + 1e-12 * max(1.0, abs(x))))


def _checked_lines(out: str, titles: list[str], width: int) -> list[str]:
    """The printed lines less the tables' titles (fixed text, e.g. '95% interval')."""
    from dodoco.report.tables import wrap_text

    skip = {ln for t in titles for ln in wrap_text(t, width)}
    return [ln for ln in out.splitlines() if ln not in skip]


@pytest.mark.parametrize("name", list(commands(Path("/x"))))
def test_json_is_all_of_stdout_and_every_width_keeps_every_value(name, world, monkeypatch, capsys):
    argv = commands(world)[name]
    rc, out, err, _ = _run(argv + ["--json", "-"], monkeypatch, capsys)
    assert rc == 0, err[-400:]
    doc = json.loads(out)  # nothing else on stdout
    known = _numbers(doc, set())
    if name in ("simulate", "compute"):  # their notes and rows live in the -o document
        full = {"simulate": "sim-full.json", "compute": "compute-full.json"}[name]
        known = _numbers(json.loads((world / full).read_text()), known)
    known = np.array(sorted(v for v in known if math.isfinite(v)))
    for width in WIDTHS:
        rc, out, err, titles = _run(argv, monkeypatch, capsys, width)
        assert rc == 0, err[-400:]
        assert out.strip(), f"{name} printed nothing at {width} columns"
        words = set(out.split())
        assert all(c in words for c in REQUIRED.get(name, ())), (name, width, out[:2000])
        for line in out.splitlines():
            assert len(line) <= width or len(line.split()) <= 2 and len(line.split()[-1]) > width - 8, (
                f"{name} at {width} columns: {line!r}"
            )
        for line in _checked_lines(out, titles, width):
            for token in NUMBER.findall(line):
                assert _matches(token, known), f"{name} at {width}: {token} in {line!r} is not in the JSON"


def test_replay_output_at_every_width(monkeypatch, capsys):
    from dodoco.commands.replay import print_result
    from dodoco.replay.results import load_results, printed_tables

    (result,) = load_results([ROOT / "bench" / "results" / "replay-n1-qwen3_moe-h2048.json"])
    known = np.array(sorted(v for v in _numbers(printed_tables(result), set()) if math.isfinite(v)))
    print_result(result, "-")
    assert json.loads(capsys.readouterr().out)["summary"]
    for width in WIDTHS:
        monkeypatch.setenv("COLUMNS", str(width))
        monkeypatch.setenv("TTY_COMPATIBLE", "1")
        buf = io.StringIO()
        with redirect_stdout(buf):
            print_result(result)
        out = ANSI.sub("", buf.getvalue() + capsys.readouterr().out)
        titles = [
            printed_tables(result)["title"],
            "harness overhead: each dispatcher in the harness vs a bare loop, same buffers",
            "raw all_to_all_single, uniform splits (nccl-tests busbw convention)",
            "not measured",
        ]
        assert max(len(x) for x in out.splitlines()) <= width
        for line in _checked_lines(out, titles, width):
            assert all(_matches(t, known) for t in NUMBER.findall(line)), line


# ---------------------------------------------------------------- exit statuses


def test_usage_mistakes_are_status_2_with_one_line(world, capsys):
    for argv in (
        ["analyze"],
        ["findings"],
        ["recommend", "--ep", "2"],
        ["simulate", str(world / "runs"), "--ep", "0"],
        ["report", str(world / "runs")],
        ["analyze", str(world / "runs"), "--json", "/no/such/dir/x.json"],
    ):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert err.startswith("error: ") and err.count("\n") == 1 and not out, (argv, err)
    main(["analyze"])
    assert "no RUN (a run directory, or a folder holding runs) given" in capsys.readouterr().err


def test_nothing_to_do_is_status_3_with_valid_json(world, capsys):
    rc = main(["simulate", str(world / "runs"), "--cluster", "dgx-h200", "--ep", "128", "--json", "-"])
    out, err = capsys.readouterr()
    assert rc == NOTHING_TO_DO == 3 and json.loads(out) == []
    assert "nothing to do: no EP degree could be simulated" in err and "skipped EP 128" in err
