"""Provenance: the commit a result names is the code that ran."""


def test_git_hash_marks_a_changed_checkout(tmp_path, monkeypatch):
    """A run made from files that differ from the commit must not claim that commit."""
    import subprocess

    from dodoco import provenance
    from dodoco.report.sections import _short_git

    repo = tmp_path / "r"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "f.py").write_text("a = 1\n")
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "."], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "x"], cwd=repo, check=True)
    monkeypatch.setattr(provenance, "__file__", str(repo / "pkg" / "f.py"))
    clean = provenance.git_hash()
    assert len(clean) == 40 and "+" not in clean
    (repo / "pkg" / "f.py").write_text("a = 2\n")
    assert provenance.git_hash() == clean + "+dirty"
    assert _short_git(clean + "+dirty") == clean[:10] + "+dirty" and _short_git(None) is None
