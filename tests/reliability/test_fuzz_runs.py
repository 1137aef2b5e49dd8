"""Property: an edited run is refused in one line, or it gives the very answer of the original.

Hypothesis edits one spot of a real run's manifest.json (any value anywhere: a number, a string, a
list, a deletion), with its seal kept, removed, or recomputed by a forger; and rewrites its counts or
seq_tokens (a changed element, swapped layers, swapped sequences, experts permuted, another dtype,
rows cut) with checksums and seal recomputed. Opening the run and reading its data must then either
raise a one-line DodocoError, or yield exactly the original numbers and fields (E, K, L, S,
seq_len, kind, granularity, origin, model, condition, counts). ``validate`` never raises and agrees.
A run with token traces pins its counts completely: any change to them is caught once the traces are
read.

Which wrong implementation fails: a reader without the seal (a kept-seal edit of details passes
silently only if the seal is not checked: the "kept" assertion), without the K rule, without the
tokens-vs-counts check (a swap of two experts in one sequence passes), one that trusts the dtype or
shape in the manifest.
"""

import copy
import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dodoco.errors import DodocoError
from dodoco.store import open_run, validate_run
from dodoco.store.atomic import sha256_file
from dodoco.store.manifest import answer_fields, seal_of

FAST = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

leaves = (
    st.none()
    | st.booleans()
    | st.sampled_from([0, 1, -1, 2, 3, 4, 7, 8, 16, 31, 32, 33, 127, 128, 2**31, 2**63])
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
json_values = st.recursive(
    leaves,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
    max_leaves=6,
)


def _paths(obj, prefix=()):
    """Every key path of a JSON tree (dict keys and list indices), the root excluded."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out += _paths(v, prefix + (k,))
    return out


def _apply(d, path, op, value):
    parent = d
    for k in path[:-1]:
        parent = parent[k]
    if op == "delete":
        del parent[path[-1]]
    elif op == "bump" and isinstance(parent[path[-1]], int) and not isinstance(parent[path[-1]], bool):
        parent[path[-1]] += value
    else:
        parent[path[-1]] = value


@pytest.fixture(scope="module")
def work(traced_runs, tmp_path_factory):
    """A private copy of the prose run, its original manifest text and its reference answers."""
    root = tmp_path_factory.mktemp("fuzz-runs")
    run = root / "prose-L32"
    shutil.copytree(traced_runs / "prose-L32", run)
    ref = open_run(run)
    answers = (answer_fields(ref.manifest), np.array(ref.counts), np.array(ref.seq_tokens))
    return run, (run / "manifest.json").read_text(), answers


def _one_line(exc):
    assert str(exc) and "\n" not in str(exc), str(exc)


def _read(run):
    """Open the run and read everything an analysis may read; (critical fields, counts) or the error."""
    r = open_run(run)
    counts = np.array(r.counts)
    if r.has_tokens:
        r.tokens()
    return answer_fields(r.manifest), counts


def test_an_edited_manifest_is_refused_or_changes_nothing(work):
    run, original, (critical, counts, _) = work
    paths = _paths(json.loads(original))

    @FAST
    @given(
        path=st.sampled_from(paths),
        op=st.sampled_from(["set", "delete", "bump"]),
        value=json_values,
        bump=st.integers(-3, 3).filter(bool),
        seal=st.sampled_from(["kept", "removed", "recomputed"]),
    )
    def check(path, op, value, bump, seal):
        d = json.loads(original)
        _apply(d, path, op, bump if op == "bump" else value)
        if seal == "removed":
            d.pop("seal", None)
        elif seal == "recomputed" and "seal" in d:
            d["seal"] = seal_of(d)
        (run / "manifest.json").write_text(json.dumps(d))
        try:
            problems = validate_run(run)
            try:
                got = _read(run)
            except DodocoError as exc:
                _one_line(exc)
                assert problems, "a reader refused a run validate calls sound"
                return
            assert got[0] == critical and np.array_equal(got[1], counts)
            edited = {k: v for k, v in d.items() if k != "seal"} != {
                k: v for k, v in json.loads(original).items() if k != "seal"
            }
            assert not (seal == "kept" and edited), "an edit under the original seal was read"
        finally:
            (run / "manifest.json").write_text(original)

    check()


def _tamper(a, how, r):
    """counts [S, L, E] or seq_tokens [S] changed one way (r: a random generator)."""
    a = a.copy()
    if how == "element":
        idx = tuple(r.integers(0, n) for n in a.shape)
        a[idx] = a[idx] + int(r.choice([-1, 1, 2, 1000])) if a[idx] > 0 else 1
    elif how == "swap-layers" and a.ndim == 3:
        a = a[:, [1, 0, *range(2, a.shape[1])]]
    elif how == "swap-sequences":
        a = a[[1, 0, *range(2, a.shape[0])]]
    elif how == "permute-experts" and a.ndim == 3:
        s = r.integers(0, a.shape[0])
        a[s] = a[s][:, r.permutation(a.shape[2])]
    elif how == "dtype":
        a = a.astype(r.choice([np.int64, np.int32, np.uint16, np.float32]))
    elif how == "cut":
        a = a[:-1]
    return a


@pytest.mark.parametrize("name", ["counts.npy", "seq_tokens.npy"])
def test_data_rewritten_by_a_forger_is_refused_or_the_same(name, work):
    run, original, (critical, counts, seq_tokens) = work
    data = (run / name).read_bytes()

    @FAST
    @given(
        how=st.sampled_from(["element", "swap-layers", "swap-sequences", "permute-experts", "dtype", "cut"]),
        seed=st.integers(0, 2**32 - 1),
        traces=st.booleans(),
    )
    def check(how, seed, traces):
        a = _tamper(np.load(run / name), how, np.random.default_rng(seed))
        np.save(run / name, a)
        d = json.loads(original)
        d["files"][name].update(
            sha256=sha256_file(run / name), bytes=(run / name).stat().st_size, shape=list(a.shape), dtype=str(a.dtype)
        )
        if not traces:  # the forger also drops the traces from the manifest
            d["files"].pop("tokens.npy")
            d["files"].pop("token_offsets.npy")
        d["seal"] = seal_of(d)
        (run / "manifest.json").write_text(json.dumps(d))
        try:
            problems = validate_run(run)
            try:
                got_critical, got = _read(run)
            except DodocoError as exc:
                _one_line(exc)
                assert problems
                return
            r = open_run(run)
            sums = np.asarray(r.counts).sum(axis=2, dtype=np.int64)
            assert np.all(sums == np.asarray(r.seq_tokens)[:, None] * r.K)  # the invariant holds
            assert got_critical == critical
            if traces:  # the traces pin the counts: nothing but the original passes
                assert np.array_equal(got, counts) and np.array_equal(r.seq_tokens, seq_tokens)
        finally:
            (run / name).write_bytes(data)
            (run / "manifest.json").write_text(original)

    check()


def test_every_mutation_kind_is_reachable(work):
    """The strategies above reach the fields that matter (else the properties prove little)."""
    run, original, _ = work
    paths = {p[:2] for p in _paths(json.loads(original))}
    for needed in (
        ("routing", "K"),
        ("routing", "E"),
        ("seq_len",),
        ("sequences",),
        ("condition", "kind"),
        ("files", "counts.npy"),
        ("identity", "seq_len"),
        ("seal",),
    ):
        assert needed in paths or needed[:1] in {p[:1] for p in paths}, needed
    assert copy.deepcopy(json.loads(original)) == json.loads(original)
