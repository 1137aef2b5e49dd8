"""Property: any flag values and any input file give a result or one line, and never a write outside
the run folder.

Hypothesis draws, for the commands that read runs and for ``import`` of every format, flag values
(edge integers, huge and negative numbers, NaN and infinities, odd text, paths to a FIFO, a device,
a folder, a binary file) and small input files (arrays of any shape and dtype, tables with odd
rows, JSON and JSON Lines dumps). Every call must exit 0, or 1/2/3 with exactly one ``error:`` line
and no traceback; a bug (any other exception) fails the test. A snapshot of the sandbox before and
after checks that nothing outside the run folder and the named outputs changed. A numpy import that
succeeds holds exactly the counts given (empty rows and layers dropped), checked independently.

Which wrong implementation fails: a config without the memory bounds (--ep 10**9 allocates), the CLI
without its boundary (an OSError or a UnicodeError escapes), an importer that writes its scratch
folder elsewhere or leaves it behind.
"""

import json
import os

import numpy as np
import pytest
from faults import snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

ints = (
    st.integers(1, 64).map(str)
    | st.sampled_from(
        [
            "-1",
            "0",
            "1",
            "2",
            "3",
            "8",
            "64",
            "2147483648",
            str(2**63),
            str(2**70),
            "1000000000000",
            "1e3",
            "",
            " 4",
            "0x10",
        ]
    )
    | st.integers(-5, 10**6).map(str)
)
floats = st.sampled_from(["nan", "inf", "-inf", "-0.5", "0", "1e308", "0.05", "abc"])
words = st.text(max_size=6) | st.sampled_from(["bogus", "contiguous", "eplb", "h100", "prefill", "..", "-"])
lists = st.lists(ints, min_size=1, max_size=3).map(",".join)


OUTPUTS = ("--json", "-o", "--out")  # named outputs: the user's choice, so only paths under out/ are drawn


def _paths(box):
    return st.sampled_from(
        [str(box["fifo"]), "/dev/zero", str(box["folder"]), str(box["binary"]), str(box["missing"]), str(box["runs"])]
    )


def _flag_sets(box):
    """{argv head: {flag: strategy of its value}}, one per command family."""
    runs, run, out = str(box["runs"]), str(box["run"]), str(box["out"])
    return {
        ("analyze", runs): {
            "--batch": lists,
            "--ep": lists,
            "--placement": words,
            "--seed": ints,
            "--json": st.just(f"{out}/a.json") | _paths(box),
            "--config": _paths(box),
        },
        ("export", "neusim", run, "-o", f"{out}/n.json"): {
            "--ep": ints,
            "--eps": lists,
            "--batch": ints,
            "--regime": words,
            "--seed": ints,
            "--tokens-per-pass": floats | ints,
            "--max-steps": ints,
        },
        ("recommend", "--hardware", "h100", "--ep", "4"): {
            "--hardware": words,
            "--ep": ints,
            "--skew": floats,
            "--run": _paths(box) | st.just(run),
            "--batch": ints,
            "--replay": _paths(box),
        },
        ("validate",): {},
        (
            "observe",
            "--model",
            "tiny:nosuchfamily",
            "--conditions",
            "prose",
            "--out",
            f"{out}/obs",
            "--seq-len",
            "8",
            "--sequences",
            "2",
        ): {
            "--seq-len": ints,
            "--sequences": ints,
            "--batch-size": ints,
            "--seed": ints,
            "--device": words,
            "--dtype": words,
            "--batch": lists,
        },
    }


def _argv(box, head, flags, any_value):
    """Strategy of one command family's argv: its head, up to 3 of its flags, and (validate) run paths."""

    def pairs(keys):  # mostly a value of the flag's own type, sometimes anything (not for outputs)
        return st.tuples(
            *[
                st.tuples(st.just(k), flags[k] if k in OUTPUTS else st.one_of(flags[k], flags[k], flags[k], any_value))
                for k in keys
            ]
        )

    chosen = st.lists(st.sampled_from(sorted(flags)), unique=True, max_size=3).flatmap(pairs) if flags else st.just(())
    tail = st.lists(_paths(box), max_size=2) if head == ("validate",) else st.just([])
    return st.tuples(st.just(list(head)), chosen, tail).map(
        lambda t: t[0] + [x for k, v in t[1] for x in (k, v)] + t[2]
    )


def _argvs(box):
    """Strategies of whole argv lists, one per command family."""
    any_value = ints | floats | words | lists | _paths(box)
    return st.one_of([_argv(box, head, flags, any_value) for head, flags in _flag_sets(box).items()])


@pytest.fixture
def box(sandbox):
    (sandbox.root / "out").mkdir()
    os.mkfifo(sandbox.root / "fifo")
    (sandbox.root / "folder").mkdir()
    (sandbox.root / "binary.bin").write_bytes(os.urandom(256))
    return {
        "root": sandbox.root,
        "runs": sandbox.runs,
        "run": sandbox.run,
        "out": sandbox.root / "out",
        "fifo": sandbox.root / "fifo",
        "folder": sandbox.root / "folder",
        "binary": sandbox.root / "binary.bin",
        "missing": sandbox.root / "missing.json",
        "outside": sandbox.outside,
    }


def _call(capsys, argv):
    from dodoco.cli import main

    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    lines = err.replace("\r", "\n").strip().splitlines()
    assert rc in (0, 1, 2, 3), (argv, rc, err)
    assert "Traceback" not in err, (argv, err)
    if rc == 1 and argv[0] == "validate" and not lines:  # its result: the problems, one per line on stdout
        assert out.strip(), argv
    elif rc:
        assert lines and lines[-1].startswith("error: ") and sum(x.startswith("error:") for x in lines) == 1, (
            argv,
            err,
        )
    return rc


def _stable(snap):
    """What no command may change: everything but the named outputs and what analyze rewrites in a run
    (its metrics.parquet and the manifest that lists it)."""
    return {
        k: v
        for k, v in snap.items()
        if not k.startswith("out/") and not k.endswith(("metrics.parquet", "manifest.json"))
    }


def test_any_flag_values_give_a_result_or_one_line(box, capsys, monkeypatch):
    monkeypatch.chdir(box["out"])  # a relative path names a file under out/

    @FAST
    @given(argv=_argvs(box))
    def check(argv):
        before = snapshot(box["root"])
        _call(capsys, argv)
        assert _stable(snapshot(box["root"])) == _stable(before), argv

    check()


arrays = st.tuples(
    st.lists(st.integers(1, 5), min_size=2, max_size=3) | st.lists(st.integers(0, 5), max_size=4),
    st.sampled_from(["uint32", "uint32", "int64", "int32", "uint8", "float64", "int8", "bool"]),
    st.integers(0, 2**32 - 1),
)
import_flags = st.dictionaries(
    st.sampled_from(
        [
            "--num-experts",
            "--top-k",
            "--layer-ids",
            "--ranks",
            "--seq-len",
            "--split-ranks",
            "--as-window",
            "--condition",
        ]
    ),
    ints | st.just(""),
    max_size=2,
)


def _expected(a: np.ndarray) -> np.ndarray | None:
    """The counts a numpy import of ``a`` must hold: [L, E] is one row; all-zero layers and rows
    dropped; None when the import must refuse (not 2-D/3-D, negative or fractional values, nothing left)."""
    if a.ndim not in (2, 3) or 0 in a.shape or a.dtype == bool or (a < 0).any() or (a != np.round(a)).any():
        return None
    a = a[None] if a.ndim == 2 else a
    layers = a.sum(axis=(0, 2)) > 0
    a = a[:, layers]
    a = a[a.sum(axis=(1, 2)) > 0]
    return a.astype(np.uint32) if a.size and a.max() < 2**32 else None


def test_any_array_imports_exactly_or_fails_in_one_line(box, capsys, monkeypatch):
    from dodoco.store import open_run

    monkeypatch.chdir(box["out"])
    runs = iter(range(10**6))

    @FAST
    @given(spec=arrays, flags=import_flags)
    def check(spec, flags):
        shape, dtype, seed = spec
        rng = np.random.default_rng(seed)
        a = rng.integers(-1 if dtype.startswith("int") else 0, 4, size=shape).astype(dtype)
        f = box["root"] / "in" / "a.npy"
        f.parent.mkdir(exist_ok=True)
        np.save(f, a)
        run = box["out"] / f"run{next(runs)}"
        before = snapshot(box["root"])
        argv = ["import", "numpy", str(f), "-o", str(run)]
        for k, v in flags.items():
            argv += [k] if k in ("--split-ranks", "--as-window") else [k, v]
        rc = _call(capsys, argv)
        after = snapshot(box["root"])
        assert {k: v for k, v in after.items() if not k.startswith("out/")} == {
            k: v for k, v in before.items() if not k.startswith("out/")
        }
        assert not list(box["out"].glob(".*dodoco-import"))
        if rc == 0:
            got, want = np.asarray(open_run(run).counts), _expected(a)
            assert want is not None, (shape, dtype, flags)
            if "--as-window" in flags:
                want = want.sum(axis=0, keepdims=True)
            if "--num-experts" not in flags:
                np.testing.assert_array_equal(got, want)
            assert _call(capsys, ["validate", str(run)]) == 0

    check()


small = st.integers(0, 9)  # plausible values, with hostile ones mixed in
odd = st.sampled_from([-2, -1, 70000, 2**31, 2**40])
value = st.one_of(small, small, small, odd)
grids = st.tuples(st.integers(1, 3), st.integers(1, 4)).flatmap(  # rectangular [L][E] lists, or ragged ones
    lambda le: st.lists(st.lists(value, min_size=le[1], max_size=le[1]), min_size=le[0], max_size=le[0])
) | st.recursive(value | st.floats(allow_nan=True) | st.none(), lambda k: st.lists(k, max_size=3), max_leaves=8)


def _trace_lines(recs):
    return "".join(json.dumps(r) + "\n" for r in recs)


trace_record = st.integers(1, 3).flatmap(
    lambda k: st.fixed_dictionaries(
        {
            "step": st.integers(0, 2) | odd,
            "layer": st.integers(0, 2),
            "rank": st.integers(0, 1),
            "topk": st.just(k) | odd,
            "top_indices": st.lists(st.lists(st.integers(0, 7) | odd, min_size=k, max_size=k), min_size=1, max_size=3),
        }
    )
)
tpe_record = st.fixed_dictionaries(
    {
        "iter": st.integers(0, 2),
        "layer": st.integers(0, 2),
        "block": st.just("decoder"),
        "tpe": st.lists(st.lists(value, min_size=4, max_size=4), min_size=1, max_size=2) | grids,
    }
)
texts = {
    "table": (
        ".csv",
        st.lists(st.tuples(st.integers(0, 2) | odd, st.integers(0, 5) | odd, value), max_size=6).map(
            lambda rows: "layer,expert,count\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
        ),
    ),
    "sglang": (".json", grids.map(lambda v: json.dumps({"logical_count": v}))),
    "megatron": (".jsonl", st.lists(trace_record, max_size=4).map(_trace_lines)),
    "megatron-tpe": (".jsonl", st.lists(tpe_record, max_size=4).map(_trace_lines)),
}


@pytest.mark.parametrize("fmt", sorted(texts))
def test_any_dump_text_gives_a_run_or_one_line(fmt, box, capsys, monkeypatch):
    monkeypatch.chdir(box["out"])
    suffix, content = texts[fmt]
    runs = iter(range(10**6))

    @settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(text=content, flags=import_flags)
    def check(text, flags):
        f = box["root"] / "in" / (f"router_trace_rank0{suffix}" if fmt == "megatron" else f"rank0{suffix}")
        f.parent.mkdir(exist_ok=True)
        f.write_text(text)
        run = box["out"] / f"run{next(runs)}"
        before = {k: v for k, v in snapshot(box["root"]).items() if not k.startswith("out/")}
        argv = ["import", fmt, str(f), "-o", str(run)]
        if fmt == "megatron-tpe":
            argv += ["--ep-size", "1"]
        for k, v in flags.items():
            argv += [k] if k in ("--split-ranks", "--as-window") else [k, v]
        if _call(capsys, argv) == 0:
            assert _call(capsys, ["validate", str(run)]) == 0
        assert {k: v for k, v in snapshot(box["root"]).items() if not k.startswith("out/")} == before

    check()


def test_any_flame_trace_gives_a_run_or_one_line(box, capsys, monkeypatch):
    """FLAME-MoE layer files with any ids (negative, beyond E, ragged) and any --seq-len/--num-experts;
    a run that imports holds exactly the bincount of the ids given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dodoco.store import open_run

    monkeypatch.chdir(box["out"])
    runs = iter(range(10**6))
    token = st.lists(st.integers(0, 7), min_size=2, max_size=2)
    hostile = st.lists(st.integers(0, 7) | odd, min_size=2, max_size=2) | st.lists(st.integers(0, 7), max_size=3)
    plausible = st.integers(1, 8).flatmap(
        lambda T: st.lists(st.lists(token, min_size=T, max_size=T), min_size=1, max_size=2)
    )
    layers = plausible | st.lists(st.lists(hostile, min_size=1, max_size=8), min_size=1, max_size=2)

    @settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(layers=layers, seq_len=st.integers(1, 4).map(str) | ints, experts=st.sampled_from(["8", "16"]) | ints)
    def check(layers, seq_len, experts):
        folder = box["root"] / "in" / f"iter_{next(runs)}"
        folder.mkdir(parents=True)
        for i, rows in enumerate(layers):
            pq.write_table(
                pa.table({"indices": pa.array(rows, pa.list_(pa.int64()))}), folder / f"layer_{i:02d}.parquet"
            )
        run = box["out"] / folder.name
        before = {k: v for k, v in snapshot(box["root"]).items() if not k.startswith("out/")}
        rc = _call(
            capsys, ["import", "flame", str(folder), "-o", str(run), "--seq-len", seq_len, "--num-experts", experts]
        )
        assert {k: v for k, v in snapshot(box["root"]).items() if not k.startswith("out/")} == before
        if rc == 0:
            S, T, E = open_run(run).counts.shape[0], int(seq_len), int(experts)
            topk = np.stack([np.asarray(rows[: S * T]) for rows in layers], axis=1)  # [S*T, L, K]
            want = np.stack(
                [
                    np.stack(
                        [np.bincount(topk[s * T : (s + 1) * T, l].ravel(), minlength=E) for l in range(topk.shape[1])]
                    )
                    for s in range(S)
                ]
            )
            np.testing.assert_array_equal(open_run(run).counts, want)

    check()
