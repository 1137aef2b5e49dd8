"""The settings of one import: what ``dodoco import`` parses, ``import_dump`` takes and every reader reads."""

from __future__ import annotations

from dataclasses import dataclass

from dodoco.config import Config, check_fields
from dodoco.errors import DodocoError


@dataclass(frozen=True, kw_only=True)
class ImportConfig(Config):
    """One import of engine dumps into a run directory.

    format: an importer of ``dodoco.ingest.FORMATS``. paths: dump files, or folders holding them.
    out: the run directory to write. What the files may not say: ``num_experts`` (logical E; also
    allows expert ids far beyond the others), ``top_k`` (K), ``layer_ids`` (model layer id of each
    dumped layer), ``ranks`` (keep only these ranks' records), ``ep_size`` / ``expert_tp_size``
    (Megatron's expert-parallel layout), ``engine_version``. How rows are formed: ``split_ranks``
    (one row per pass and rank), ``as_window`` (every row summed into one window).
    """

    format: str
    paths: tuple[str, ...]
    out: str
    model_id: str | None = None
    condition: str = "production"
    seq_len: int = 0
    layer_ids: tuple[int, ...] | None = None
    num_experts: int | None = None
    top_k: int | None = None
    ranks: tuple[int, ...] | None = None
    split_ranks: bool = False
    as_window: bool = False
    ep_size: int | None = None
    expert_tp_size: int = 1
    engine_version: str | None = None
    overwrite: bool = False

    def __post_init__(self):
        check_fields(self)
        if not self.paths:
            raise DodocoError("no input files given: name dump files or folders holding them")
        if not str(self.out).strip():
            raise DodocoError("-o/--out is empty: name the run directory to write")
        if not self.condition.strip():
            raise DodocoError("--condition is empty: name the condition of the run (default production)")
        for flag, value, low in (
            ("--seq-len", self.seq_len, 0),
            ("--num-experts", self.num_experts, 1),
            ("--top-k", self.top_k, 1),
            ("--ep-size", self.ep_size, 1),
            ("--expert-tp-size", self.expert_tp_size, 1),
        ):
            if value is not None and value < low:
                raise DodocoError(f"{flag} {value} must be >= {low}")
        for flag, values in (("--ranks", self.ranks), ("--layer-ids", self.layer_ids)):
            if values is not None and (not values or min(values) < 0):
                raise DodocoError(f"{flag} {','.join(map(str, values)) or '(empty)'} must list ids >= 0, e.g. 0,1")
        if self.top_k is not None and self.num_experts is not None and self.top_k > self.num_experts:
            raise DodocoError(f"--top-k {self.top_k} is larger than --num-experts {self.num_experts}: K <= E")

    def options(self) -> dict:
        """The options that shape the rows, as recorded in the manifest (defaults left out)."""
        values = dict(
            num_experts=self.num_experts,
            top_k=self.top_k,
            ranks=list(self.ranks or []) or None,
            split_ranks=self.split_ranks,
            as_window=self.as_window,
            layer_ids=list(self.layer_ids) if self.layer_ids else None,
            ep_size=self.ep_size,
            expert_tp_size=self.expert_tp_size if self.ep_size else None,
        )
        return {k: v for k, v in values.items() if v not in (None, False)}
