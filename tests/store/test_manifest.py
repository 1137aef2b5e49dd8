"""store.manifest: the typed manifest, its JSON round trip, and runs written by schema dodoco.run/1."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.store import ConditionKind, Granularity, Origin, open_run, validate_run
from dodoco.store.manifest import SCHEMA, Manifest, migrate, read_raw

FIXTURES = Path(__file__).parent.parent / "fixtures" / "run-v1"


def test_observed_v1_run_opens_through_the_migration():
    raw = json.loads((FIXTURES / "prose-L4096" / "manifest.json").read_text())
    assert raw["schema"] == "dodoco.run/1"
    run = open_run(FIXTURES / "prose-L4096")
    m = run.manifest
    assert m.schema == SCHEMA and m.origin is Origin.OBSERVED and run.kind is ConditionKind.REAL
    assert (run.E, run.K, run.L, m.routing.layer_ids) == (128, 8, 4, (0, 1, 2, 3))
    assert m.identity == raw["spec"] and m.model.id == "tiny:qwen3_moe"
    assert m.model.architecture == "Qwen3MoeForCausalLM" and m.model.details["family"] == "qwen3_moe"
    assert m.details["seed"] == 0 and m.details["versions"] == raw["versions"]
    assert run.granularity is Granularity.SEQUENCE and run.counts.shape == (16, 4, 128)
    np.testing.assert_array_equal(run.aggregate(), np.load(FIXTURES / "prose-L4096" / "counts.npy").sum(0))
    assert validate_run(FIXTURES / "prose-L4096") == []


def test_imported_window_v1_run_opens_through_the_migration():
    run = open_run(FIXTURES / "window-import")
    m = run.manifest
    assert m.origin is Origin.IMPORTED and run.granularity is Granularity.WINDOW
    assert run.K == 2 and m.routing.layer_ids == (3, 4) and run.counts.shape == (1, 2, 4)
    assert m.details["source"]["format"] == "table"
    np.testing.assert_array_equal(run.aggregate(), [[10, 30, 0, 5], [7, 7, 7, 7]])


@pytest.mark.parametrize("name", ["prose-L4096", "window-import"])
def test_round_trip(name):
    m = open_run(FIXTURES / name).manifest
    again = Manifest.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m
    assert migrate(m.to_dict()) == m.to_dict()  # v2 passes through unchanged


def test_v1_mock_kind_falls_back_to_the_name_only_in_migration():
    raw = json.loads((FIXTURES / "prose-L4096" / "manifest.json").read_text())
    del raw["condition"]["kind"]
    raw["condition"]["name"] = "mock-uniform"
    assert migrate(raw)["condition"]["kind"] == "mock"


def test_missing_k_is_an_error_naming_the_fix(tmp_path):
    from dodoco.findings.synthetic import write_counts_run

    write_counts_run(
        tmp_path / "r", np.ones((1, 1, 4), np.uint32), model="m", condition="production", K=None, granularity="window"
    )
    with pytest.raises(DodocoError, match="does not record top-k K: re-import it with --top-k"):
        open_run(tmp_path / "r").K


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: d.pop("routing"), "lacks the key 'routing'"),
        (lambda d: d["routing"].update(K=9), "impossible"),
        (lambda d: d.update(schema="other/1"), "schema 'other/1'"),
        (lambda d: d.update(granularity="minute"), "impossible value"),
    ],
)
def test_damaged_manifests_are_one_line_errors(tmp_path, mutate, match):
    shutil.copytree(FIXTURES / "window-import", tmp_path / "r")
    d = read_raw(tmp_path / "r")
    mutate(d)
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(DodocoError, match=match):
        open_run(tmp_path / "r")


def test_a_flipped_byte_is_never_computed_from(tmp_path):
    shutil.copytree(FIXTURES / "prose-L4096", tmp_path / "r")
    f = tmp_path / "r" / "counts.npy"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0x10
    f.write_bytes(bytes(data))
    with pytest.raises(DodocoError, match="counts.npy does not match its checksum"):
        open_run(tmp_path / "r").counts
