"""Helpers of the fault-injection tests (imported by name: tests/reliability is on sys.path)."""

import hashlib
from pathlib import Path


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder`` (what 'nothing changed or lost' compares)."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def one_line(err: str, *needles: str) -> str:
    """Assert that stderr ends in one ``error: ...`` line holding every needle, with no traceback
    (progress bars of libraries, e.g. transformers loading weights, may precede it); return the line."""
    lines = err.replace("\r", "\n").strip().splitlines()
    assert lines and lines[-1].startswith("error: "), err
    assert "Traceback" not in err and sum(line.startswith("error:") for line in lines) == 1, err
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    return lines[-1]


def interrupt_after(monkeypatch, n: int):
    """Make the n-th forward pass of observe raise KeyboardInterrupt (as Ctrl-C would; the n - 1 before
    it are written as parts); returns the undo."""
    from dodoco.observe import runner

    real, calls = runner._forward_fn, []

    def failing(model):
        forward = real(model)

        def f(ids):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            forward(ids)

        return f

    monkeypatch.setattr(runner, "_forward_fn", failing)
    return lambda: monkeypatch.setattr(runner, "_forward_fn", real)
