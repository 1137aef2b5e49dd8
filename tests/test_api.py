"""The public API: every lazy name resolves, and dodoco.observe stays the runner after its
subpackage is imported (Python sets the package attribute to the submodule)."""

import importlib

import dodoco


def test_every_public_name_resolves():
    for name in dodoco.__all__:
        assert getattr(dodoco, name) is not None, name


def test_observe_is_callable_after_its_package_is_imported(monkeypatch):
    importlib.import_module("dodoco.observe.capture")
    from dodoco.observe import runner

    seen = {}
    monkeypatch.setattr(runner, "observe", lambda *a, **k: seen.setdefault("call", (a, k)))
    dodoco.observe("tiny:qwen3_moe", ["prose"], seq_len=8)
    assert seen["call"] == (("tiny:qwen3_moe", ["prose"]), {"seq_len": 8})
