"""Style limits of the code DODOCO ships, runs and tests (src/dodoco, bench/, scripts/, tests/): modules <= 400
lines, functions <= 60 lines (docstring included)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = (ROOT / "src" / "dodoco", ROOT / "bench", ROOT / "scripts", ROOT / "tests")
MAX_MODULE, MAX_FUNCTION = 400, 60


def _offenders():
    for tree in TREES:
        for path in sorted(tree.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            rel = path.relative_to(tree.parent)
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


def test_the_checker_sees_long_functions_and_modules(tmp_path, monkeypatch):
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n")
    (tmp_path / "big.py").write_text("x = 1\n" * 401)
    monkeypatch.setattr(__import__(__name__), "TREES", (tmp_path,))
    found = list(_offenders())
    assert [o for o in found if "f() has 62 lines" in o]
    assert [o for o in found if "big.py has 401 lines" in o]
    assert not [o for o in found if "m.py has" in o]
