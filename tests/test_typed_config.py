"""dodoco.config: one loader for flags, TOML and dicts; unknown keys and wrong types are errors."""

import argparse
from dataclasses import dataclass

import pytest

from dodoco.config import Config, add_config_flag
from dodoco.errors import DodocoError


@dataclass(frozen=True, kw_only=True)
class Demo(Config):
    runs: tuple[str, ...]
    batch: tuple[int, ...] = (1, 8)
    ep: int | None = None
    threshold: float = 0.05
    strict: bool = False


def _parser():
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="*")
    p.add_argument("--batch", type=lambda s: [int(x) for x in s.split(",")], default=None)
    p.add_argument("--ep", type=int, default=None)
    p.add_argument("--threshold", type=float, default=None)
    add_config_flag(p)
    return p


def test_flags_over_toml_over_defaults(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('runs = ["a"]\nbatch = [2, 4]\nthreshold = 1\n')
    cfg = Demo.from_args(_parser().parse_args(["--config", str(f), "--ep", "8"]))
    assert cfg == Demo(runs=("a",), batch=(2, 4), ep=8, threshold=1.0)
    assert isinstance(cfg.threshold, float)
    cfg = Demo.from_args(_parser().parse_args(["b", "--config", str(f), "--batch", "16"]))
    assert cfg.runs == ("b",) and cfg.batch == (16,)


def test_unknown_key_names_known_ones(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('runs = ["a"]\nbatchh = 3\n')
    with pytest.raises(DodocoError, match=r"unknown key batchh .* known keys are runs, batch, ep"):
        Demo.from_toml(f)


@pytest.mark.parametrize(
    "data,msg",
    [
        ({"runs": ["a"], "ep": "eight"}, r"--ep 'eight' is not a"),
        ({"runs": ["a"], "strict": 1}, r"--strict 1 must be true or false"),
        ({"runs": ["a"], "batch": ["x"]}, r"--batch 'x' must be an integer"),
        ({}, r"missing --runs"),
    ],
)
def test_wrong_types_are_one_line_errors(data, msg):
    with pytest.raises(DodocoError, match=msg):
        Demo.from_dict(data)


@pytest.mark.parametrize("content", [b"\x00\xff\xfe binary", "not = [valid"])
def test_bad_files(tmp_path, content):
    f = tmp_path / "c.toml"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DodocoError, match="c.toml"):
        Demo.from_toml(f, runs=("a",))
    with pytest.raises(DodocoError, match="does not exist"):
        Demo.from_toml(tmp_path / "missing.toml")
