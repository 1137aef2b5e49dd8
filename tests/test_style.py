"""Style limits of the source tree: modules <= 400 lines, functions <= 60 lines (docstring included)."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "dodoco"
MAX_MODULE, MAX_FUNCTION = 400, 60


def _offenders():
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(SRC.parent)
        n = len(text.splitlines())
        if n > MAX_MODULE:
            yield f"{rel} has {n} lines (max {MAX_MODULE})"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION:
                    yield f"{rel}:{node.lineno} {node.name}() has {length} lines (max {MAX_FUNCTION})"


def test_modules_and_functions_are_small():
    offenders = list(_offenders())
    assert not offenders, "split these:\n" + "\n".join(offenders)


def test_the_checker_sees_long_functions(tmp_path, monkeypatch):
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    assert [o for o in _offenders() if "f() has 62 lines" in o]
