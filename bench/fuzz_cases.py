"""The four families of fuzz cases of bench/bench_fuzz.py and their oracles: ``case_manifest`` (one
spot of the manifest changed, its seal kept, removed or recomputed), ``case_data`` (an array rewritten
under recomputed checksums and seal), ``case_flags`` (a CLI command with random flag values) and
``case_import`` (a random small array or table imported through the CLI), each drawing from the one
seeded ``random.Random`` it is given, checking its outcome against the sandbox's reference answers and
raising ``Failure`` on a broken oracle; ``CASES`` maps each family's name to its generator."""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bench_fuzz import Box


class Failure(Exception):
    pass


def _read(run):
    from dodoco.store import open_run
    from dodoco.store.manifest import answer_fields

    r = open_run(run)
    counts = np.array(r.counts)
    r.tokens()
    return answer_fields(r.manifest), counts


def _one_line(exc):
    if not str(exc) or "\n" in str(exc):
        raise Failure(f"not one line: {str(exc)[:200]!r}")


def _value(rng: random.Random):
    return rng.choice(
        [
            None,
            True,
            0,
            1,
            -1,
            2,
            7,
            8,
            16,
            32,
            128,
            2**31,
            2**63,
            10**20,
            -(10**20),
            0.5,
            float(1e308),
            "",
            "x",
            "mock",
            "real",
            "sequence",
            "window",
            [],
            [1, 2],
            {},
            {"a": 1},
            [[1]],
        ]
    )


def case_manifest(box: Box, rng: random.Random) -> str:
    from dodoco.store.manifest import seal_of

    d = json.loads(box.manifest)
    path, op, seal = (
        rng.choice(box.paths),
        rng.choice(["set", "delete", "bump"]),
        rng.choice(["kept", "removed", "recomputed"]),
    )
    parent = d
    for k in path[:-1]:
        parent = parent[k]
    old = parent[path[-1]]
    if op == "delete":
        del parent[path[-1]]
    elif op == "bump" and isinstance(old, int) and not isinstance(old, bool):
        parent[path[-1]] = old + rng.choice([-2, -1, 1, 2, 1000])
    else:
        parent[path[-1]] = _value(rng)
    if seal == "removed":
        d.pop("seal", None)
    elif seal == "recomputed" and "seal" in d:
        d["seal"] = seal_of(d)
    what = f"{op} {'/'.join(map(str, path))} (seal {seal})"
    problems, got = _written_and_read(box, d, what)
    if got is None:
        return what
    if got[0] != box.critical or not np.array_equal(got[1], box.counts):
        raise Failure(f"{what}: read with other fields or counts")
    original = {k: v for k, v in json.loads(box.manifest).items() if k != "seal"}
    if seal == "kept" and {k: v for k, v in d.items() if k != "seal"} != original:
        raise Failure(f"{what}: an edit under the original seal was read")
    return what


def _written_and_read(box: Box, d: dict, what: str) -> tuple:
    """The manifest ``d`` written, the run validated and read -> (validate's problems, what a reader
    read or None where it refused in one line); refusing what validate calls sound is a failure."""
    from dodoco.errors import DodocoError
    from dodoco.store import validate_run

    (box.run / "manifest.json").write_text(json.dumps(d))
    problems = validate_run(box.run)
    try:
        return problems, _read(box.run)
    except DodocoError as exc:
        _one_line(exc)
        if not problems:
            raise Failure(f"{what}: a reader refused what validate calls sound") from None
        return problems, None


def case_data(box: Box, rng: random.Random) -> str:
    from dodoco.store.atomic import sha256_file
    from dodoco.store.manifest import seal_of

    name = rng.choice(["counts.npy", "counts.npy", "seq_tokens.npy", "tokens.npy"])
    hows = ["element", "swap-rows", "dtype", "cut"] + (["swap-layers", "permute"] if name != "seq_tokens.npy" else [])
    a, how = np.load(box.run / name), rng.choice(hows)
    g = np.random.default_rng(rng.getrandbits(32))
    if how == "element":
        idx = tuple(int(g.integers(0, n)) for n in a.shape)
        a[idx] = a[idx] + 1 if a[idx] < np.iinfo(a.dtype).max else 0
    elif how == "swap-layers" and a.ndim == 3:
        a = a[:, [1, 0, *range(2, a.shape[1])]]
    elif how == "swap-rows":
        a = a[[1, 0, *range(2, a.shape[0])]]
    elif how == "permute" and a.ndim == 3:
        s = int(g.integers(0, a.shape[0]))
        a[s] = a[s][..., g.permutation(a.shape[-1])] if name == "counts.npy" else a[s][g.permutation(a.shape[1])]
    elif how == "dtype":
        a = a.astype(rng.choice([np.int64, np.int32, np.uint16, np.float32]))
    elif how == "cut":
        a = a[:-1]
    np.save(box.run / name, a)
    d = json.loads(box.manifest)
    d["files"][name].update(
        sha256=sha256_file(box.run / name),
        bytes=(box.run / name).stat().st_size,
        shape=list(a.shape),
        dtype=str(a.dtype),
    )
    d["seal"] = seal_of(d)
    what = f"{how} of {name}"
    problems, got = _written_and_read(box, d, what)
    if got is None:
        return what
    if not np.array_equal(got[1], box.counts) or problems:
        raise Failure(f"{what}: read other counts, or read what validate refuses ({problems[:1]})")
    return what


def _int(rng):
    return rng.choice(
        [
            "-1",
            "0",
            "1",
            "2",
            "4",
            "8",
            "64",
            str(2**31),
            str(2**63),
            str(2**70),
            "10000000000",
            "1e3",
            "",
            "nan",
            "inf",
            "x",
            str(rng.randint(1, 10**6)),
        ]
    )


def _validate_family(box: Box, rng: random.Random, run: str) -> tuple[list[str], dict]:
    return ["validate", rng.choice(box.specials + [run])], {}


def _recommend_family(box: Box, rng: random.Random, run: str) -> tuple[list[str], dict]:
    return ["recommend", "--hardware", "h100", "--ep", "4"], {
        "--ep": _int(rng),
        "--skew": rng.choice(["nan", "inf", "1.2", "0.5", "x"]),
        "--batch": _int(rng),
        "--run": rng.choice(box.specials + [run]),
        "--replay": rng.choice(box.specials),
        "--hardware": rng.choice(["h100", "bogus", ""]),
    }


def _analyze_family(box: Box, rng: random.Random, run: str) -> tuple[list[str], dict]:
    return ["analyze", run], {
        "--batch": _int(rng),
        "--ep": _int(rng),
        "--seed": _int(rng),
        "--placement": rng.choice(["bogus", "eplb", "contiguous"]),
        "--config": rng.choice(box.specials),
        "--json": str(box.out / "a.json"),
    }


def _import_family(box: Box, rng: random.Random, run: str) -> tuple[list[str], dict]:
    head = ["import", "numpy", rng.choice(box.specials), "-o", str(box.out / "r")]
    return head, {"--num-experts": _int(rng), "--top-k": _int(rng), "--layer-ids": _int(rng), "--seq-len": _int(rng)}


def _observe_family(box: Box, rng: random.Random, run: str) -> tuple[list[str], dict]:
    head = ["observe", "--model", "tiny:nosuch", "--conditions", "prose", "--seq-len", "8", "--sequences", "2"]
    return head + ["--out", str(box.out / "obs")], {
        "--seq-len": _int(rng),
        "--sequences": _int(rng),
        "--seed": _int(rng),
        "--device": rng.choice(["bogus", "cuda:99999", "cpu"]),
        "--batch-size": _int(rng),
    }


def _findings_family(box: Box, rng: random.Random, run: str) -> tuple[list[str], dict]:
    return ["findings", run, "--batch", "1"], {
        "--threshold": rng.choice(["nan", "inf", "-1", "x"]),
        "--seed": _int(rng),
        "--groups": _int(rng),
    }


#: every CLI command a ``flags`` case may call: (its sound head, its flags with one random value each);
#: all of them are drawn, in this order, before one is picked (the draws fix the seeded sequence)
FLAG_FAMILIES = (
    _validate_family,
    _recommend_family,
    _analyze_family,
    _import_family,
    _observe_family,
    _findings_family,
)


def _flag_argv(box: Box, rng: random.Random) -> list[str]:
    """A CLI command with up to two of its flags, each of its own random value or (1 in 5) any value."""
    any_value = [_int(rng), rng.choice(box.specials), rng.choice(["bogus", "eplb", "h100", "prefill", "\udcff", "-"])]
    run = str(box.run)
    head, flags = rng.choice([family(box, rng, run) for family in FLAG_FAMILIES])
    argv = list(head)
    for k in rng.sample(sorted(flags), k=min(len(flags), rng.randint(0, 2))):
        argv += [k, flags[k] if rng.random() < 0.8 else rng.choice(any_value)]
    return argv


def _cli(argv: list[str]) -> tuple[int, str]:
    """main(argv) -> (exit code, stderr), every oracle of a CLI call checked (validate's exit 1 is its
    result: the problems, one per line on stdout)."""
    from dodoco.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except Exception as exc:  # noqa: BLE001 (a traceback: a failure found)
            raise Failure(f"{type(exc).__name__} escaped main: {str(exc)[:160]}") from None
    text = err.getvalue()
    lines = text.replace("\r", "\n").strip().splitlines()
    if rc not in (0, 1, 2, 3) or "Traceback" in text:
        raise Failure(f"exit {rc}: {text[-200:]!r}")
    if rc == 1 and argv[0] == "validate" and not lines and out.getvalue().strip():
        return rc, text
    if rc and not (lines and lines[-1].startswith("error: ") and sum(x.startswith("error:") for x in lines) == 1):
        raise Failure(f"exit {rc} without one error line: {text[-200:]!r}")
    return rc, text


def case_flags(box: Box, rng: random.Random) -> str:
    argv = _flag_argv(box, rng)
    _cli(argv)
    if not box.untouched():
        raise Failure("a file outside the outputs changed")
    return " ".join(argv[:1] + argv[-4:])


def case_import(box: Box, rng: random.Random) -> str:
    from dodoco.store import open_run

    g = np.random.default_rng(rng.getrandbits(32))
    run = box.out / f"imp{rng.getrandbits(40)}"
    if rng.random() < 0.6:
        shape = [rng.randint(0, 4) for _ in range(rng.choice([1, 2, 3, 3, 3, 4]))]
        dtype = rng.choice(["uint32", "uint32", "int64", "int32", "float64", "bool"])
        a = g.integers(-1 if dtype.startswith("int") else 0, 4, size=shape).astype(dtype)
        f = box.root / "in" / "a.npy"
        np.save(f, a)
        argv = ["import", "numpy", str(f), "-o", str(run)]
    else:
        rows = [
            (rng.choice([0, 1, 2, -1, 70000]), rng.choice([0, 1, 2, 3, -2, 10**9]), rng.choice([0, 1, 5, -3, 2**40]))
            for _ in range(rng.randint(0, 5))
        ]
        f, a = box.root / "in" / "t.csv", None
        f.write_text("layer,expert,count\n" + "".join(f"{x},{y},{z}\n" for x, y, z in rows))
        argv = ["import", "table", str(f), "-o", str(run)]
    if rng.random() < 0.3:
        argv += [rng.choice(["--num-experts", "--top-k", "--seq-len"]), _int(rng)]
    rc, _ = _cli(argv)
    if not box.untouched() or list(box.out.glob(".*dodoco-import")):
        raise Failure("an import touched a file outside its run, or left its scratch folder")
    if rc == 0:
        if _cli(["validate", str(run)])[0] != 0:
            raise Failure(f"{' '.join(argv[:2])}: an imported run does not validate")
        if a is not None and len(argv) == 5:
            want = a[None] if a.ndim == 2 else a
            want = want[:, want.sum(axis=(0, 2)) > 0]
            want = want[want.sum(axis=(1, 2)) > 0]
            if not np.array_equal(np.asarray(open_run(run).counts), want):
                raise Failure(f"numpy {list(a.shape)} {a.dtype}: imported other counts")
    shutil.rmtree(run, ignore_errors=True)
    return " ".join(argv[:2])


CASES = {"manifest": case_manifest, "data": case_data, "flags": case_flags, "import": case_import}
