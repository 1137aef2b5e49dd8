"""Provenance: the commit a result names is the code that ran."""


def test_git_hash_marks_a_changed_checkout(tmp_path, monkeypatch):
    """A run made from code that differs from the commit must not claim that commit; changed docs do not count."""
    import subprocess

    from dodoco import provenance
    from dodoco.report.sections import _short_git

    repo = tmp_path / "r"
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "src" / "pkg" / "f.py").write_text("a = 1\n")
    (repo / "README.md").write_text("docs\n")
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "."], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "x"], cwd=repo, check=True)
    monkeypatch.setattr(provenance, "__file__", str(repo / "src" / "pkg" / "f.py"))
    clean = provenance.git_hash()
    assert len(clean) == 40 and "+" not in clean
    (repo / "README.md").write_text("docs changed\n")  # not code: the commit still names what ran
    assert provenance.git_hash() == clean
    (repo / "src" / "pkg" / "f.py").write_text("a = 2\n")
    assert provenance.git_hash() == clean + "+dirty"
    assert _short_git(clean + "+dirty") == clean[:10] + "+dirty" and _short_git(None) is None
