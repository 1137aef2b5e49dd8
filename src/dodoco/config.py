"""Typed configs: one loader for command-line flags, TOML files and dicts.

Every command's settings are a frozen keyword-only dataclass that subclasses ``Config``. The same
keys come from three places, in this order (later wins): the dataclass defaults, a TOML file
(``--config FILE``), the flags the user typed. An unknown key is an error naming the known ones;
a value of the wrong type is an error naming the key, the value and the type expected. Checks of
the values themselves go in the subclass's ``__post_init__`` (a one-line ``DodocoError``).

    @dataclass(frozen=True, kw_only=True)
    class AnalyzeConfig(Config):
        runs: tuple[str, ...]
        batch: tuple[int, ...] = (1, 2, 4, 8, 16, 32)

    cfg = AnalyzeConfig.from_args(args)     # argparse.Namespace (flags left unset are None)
    cfg = AnalyzeConfig.from_toml("a.toml", runs=("runs/x",))

Parsers leave defaults to the dataclass (argparse ``default=None``), so that a TOML value is not
overridden by a flag the user never typed.

Bounds before allocation: ``from_dict`` refuses, for every config, an integer outside the 64-bit
range, a number that is not finite, a negative seed, and a size above its limit in ``LIMITS``
(derived from the formats DODOCO stores and from this machine's memory: ``memory_bytes``); a
config's ``__post_init__`` checks the sizes that multiply (``check_allocation``). Sizes read from
files are checked with the same ``check_allocation`` before an array is made.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from dodoco.errors import DodocoError

__all__ = [
    "LIMITS",
    "MAX_EXPERTS",
    "MAX_INT",
    "Config",
    "add_config_flag",
    "allocation_limit",
    "check_allocation",
    "check_fields",
    "memory_bytes",
    "read_toml",
]

C = TypeVar("C", bound="Config")
_MISSING = dataclasses.MISSING

#: Expert ids are stored as uint16 (tokens.npy), so no run has more experts; no MoE model comes close,
#: nor to as many MoE layers or experts per token.
MAX_EXPERTS = 1 << 16
MAX_INT = (1 << 63) - 1  # numpy's int64: a larger value overflows every array it enters


def memory_bytes() -> int:
    """This machine's physical memory in bytes (``DODOCO_MEMORY_BYTES`` overrides it, e.g. in tests)."""
    override = os.environ.get("DODOCO_MEMORY_BYTES", "").strip()
    if override.isdigit():
        return int(override)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def allocation_limit() -> int:
    """The largest single array DODOCO makes in memory: half of the machine's memory."""
    return memory_bytes() // 2


def _gib(n: int | float) -> str:
    return f"{n / (1 << 30):.3g} GiB"


def check_allocation(nbytes: int | float, what: str, fix: str, error: type[DodocoError] = DodocoError) -> None:
    """Refuse, before allocating, an array of ``nbytes`` above ``allocation_limit()``: one line naming
    ``what`` needs it and ``fix`` (DodocoError for sizes the user typed, DataError for sizes read from
    a file)."""
    if nbytes > allocation_limit():
        raise error(
            f"{what} needs {_gib(nbytes)} of memory, more than half of this machine's {_gib(memory_bytes())}: {fix}"
        )


def _ranks_limit() -> int:
    """EP degrees N: one N x N int64 traffic matrix must fit in memory (and N <= MAX_EXPERTS)."""
    return min(MAX_EXPERTS, math.isqrt(allocation_limit() // 8))


#: Largest value of every size field of any config (a callable is evaluated when checked), with why.
LIMITS = {
    "num_experts": (MAX_EXPERTS, "expert ids are stored as 16-bit integers"),
    "top_k": (MAX_EXPERTS, "K <= E <= 65536"),
    "grid_experts": (MAX_EXPERTS, "expert ids are stored as 16-bit integers"),
    "grid_topk": (MAX_EXPERTS, "K <= E <= 65536"),
    "layer_ids": (MAX_EXPERTS, "no model has that many layers"),
    "layers": (MAX_EXPERTS, "no model has that many layers"),
    "ep": (_ranks_limit, "an N x N traffic matrix must fit in half of this machine's memory"),
    "eps": (_ranks_limit, "an N x N traffic matrix must fit in half of this machine's memory"),
    "nproc": (_ranks_limit, "an N x N traffic matrix must fit in half of this machine's memory"),
    "n_boot": (1 << 20, "a bootstrap needs far fewer resamples"),
    "buffers": (1 << 10, "rotating buffer sets live in GPU memory"),
}


def read_toml(path) -> dict:
    """The table of a TOML file -> dict; one-line errors for a missing, binary or invalid file."""
    import tomllib

    from dodoco.paths import read_regular

    p = Path(path)
    if not p.exists():
        raise DodocoError(f"config file {p} does not exist: give an existing .toml file")
    if p.is_dir():
        raise DodocoError(f"config file {p} is a folder: give a .toml file")
    try:
        text = read_regular(p, "config file", limit=1 << 24).decode("utf-8")  # a FIFO is refused, never read
    except UnicodeDecodeError:
        raise DodocoError(f"config file {p} is not text (binary data): give a .toml file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DodocoError(f"config file {p} is not valid TOML ({exc}): fix it") from None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


#: Keys that the command line takes as positional arguments (named so in errors, not as --flags).
POSITIONAL = {
    "runs": "RUN (a run directory, or a folder holding runs)",
    "paths": "PATH (dump files, or folders holding them)",
    "format": "FORMAT",
}


def _missing(names: list[str], source: str) -> str:
    """The one-line error for required keys left out, worded for flags, positionals or a file."""
    if source == "the command line":
        pos = [POSITIONAL[n] for n in names if n in POSITIONAL]
        flags = [_flag(n) for n in names if n not in POSITIONAL]
        what = " and ".join([f"no {p}" for p in pos] + ([f"no {', '.join(flags)}"] if flags else []))
        return f"{what} given: add {'it' if len(names) == 1 else 'them'} to the command"
    return f"missing {', '.join(_flag(n) for n in names)} in {source}: give {'it' if len(names) == 1 else 'them'}"


def _convert(key: str, value: Any, hint: Any) -> Any:
    """``value`` converted to the annotation ``hint`` (tuples from lists, ints to floats), or an
    error naming the key when it cannot be."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        if hint is type(None) or type(None) in args:
            return None
        raise DodocoError(f"{_flag(key)} needs a value, got none")
    if origin in (typing.Union, types.UnionType):
        for arm in (a for a in args if a is not type(None)):
            try:
                return _convert(key, value, arm)
            except DodocoError:
                continue
        raise DodocoError(f"{_flag(key)} {value!r} is not a {' or '.join(_name(a) for a in args)}")
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            value = [value]
        item = args[0] if args else Any
        return tuple(_convert(key, v, item) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise DodocoError(f"{_flag(key)} {value!r} must be a table of keys and values")
        return dict(value)
    if hint is Any or hint is object:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise DodocoError(f"{_flag(key)} {value!r} must be true or false")
    if hint in (int, float, str) and (not isinstance(value, hint) or isinstance(value, bool) and hint is not bool):
        raise DodocoError(f"{_flag(key)} {value!r} must be {_name(hint)}")
    return value


def check_fields(cfg) -> None:
    """``_check_bounds`` on every field of a config (for ``__post_init__``: a config built directly,
    not through ``from_dict``, is checked the same way)."""
    for f in dataclasses.fields(cfg):
        _check_bounds(f.name, getattr(cfg, f.name))


def _check_bounds(key: str, value: Any) -> None:
    """The bounds every config shares (module docstring): 64-bit integers, finite numbers, seeds >= 0,
    sizes <= ``LIMITS``; one line naming the flag, the value and the allowed range."""
    for v in value if isinstance(value, tuple) else (value,):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise DodocoError(f"{_flag(key)} {v} is not a finite number: give a number")
        if isinstance(v, int) and abs(v) > MAX_INT:
            raise DodocoError(f"{_flag(key)} {v} is out of range: give an integer below 2**63")
        if (key == "seed" or key.endswith("_seed")) and v < 0:
            raise DodocoError(f"{_flag(key)} {v} is negative: give a seed >= 0, e.g. {_flag(key)} 0")
        if key in LIMITS:
            top, why = LIMITS[key]
            top = top() if callable(top) else top
            if v > top:
                raise DodocoError(f"{_flag(key)} {v} is too large: at most {top} ({why})")


def _name(hint) -> str:
    return {int: "an integer", float: "a number", str: "text", bool: "true or false", type(None): "nothing"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Base of every command's typed settings (frozen, keyword-only)."""

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls: type[C], data: dict, *, source: str = "settings") -> C:
        """Build from a dict of keys (TOML names with '-' or '_' both accepted)."""
        known = cls.keys()
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise DodocoError(f"unknown key {', '.join(unknown)} in {source}: known keys are {', '.join(known)}")
        hints = typing.get_type_hints(cls)
        values = {k: _convert(k, v, hints[k]) for k, v in data.items()}
        for k, v in values.items():
            _check_bounds(k, v)
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in values and f.default is _MISSING and f.default_factory is _MISSING
        ]
        if missing:
            raise DodocoError(_missing(missing, source))
        return cls(**values)

    @classmethod
    def from_toml(cls: type[C], path, **overrides) -> C:
        """Build from a TOML file's keys, with ``overrides`` (not None) taking precedence."""
        data = read_toml(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, source=f"config file {path}")

    @classmethod
    def from_args(cls: type[C], args: argparse.Namespace, **extra) -> C:
        """Build from parsed flags: attributes named like the fields and not None, over the TOML
        file of ``args.config`` when the parser has ``--config``; ``extra`` wins over both. An empty
        list (a positional ``nargs="*"`` left out) counts as not given."""
        flags = {k: v for k, v in vars(args).items() if k in cls.keys() and v not in (None, [], ())}
        flags.update({k: v for k, v in extra.items() if v is not None})
        path = getattr(args, "config", None)
        if path:
            return cls.from_toml(path, **flags)
        return cls.from_dict(flags, source="the command line")

    def replace(self: C, **changes) -> C:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE``: a TOML file with the same keys as the flags (flags win)."""
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="TOML file with the same keys as the flags (flags given here win)",
    )


def pick(obj, names: str) -> dict:
    """{name: obj.name} for the space-separated attribute ``names`` (a dataclass's fields into a JSON
    dict or another call's keywords, each name written once)."""
    return {n: getattr(obj, n) for n in names.split()}
