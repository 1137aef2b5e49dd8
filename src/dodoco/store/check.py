"""Cross-checks of a run's content: the manifest's fields against each other and against the data,
and the data files against each other. ``validate`` reports every problem; every reader (``Run``)
refuses the run at the first one, before computing anything (docs/run-format.md, "What is verified").

Each check returns a list of problems, each naming the file and what contradicts what. The rules:

- dtypes and shapes: counts ``uint32 [S, L, E]`` with S = ``sequences``, L and E from ``routing``;
  seq_tokens ``int64 [S]``; tokens ``uint8 [T, L, K]`` (E <= 256) or ``uint16``; token_offsets
  ``int64 [S+1]`` from 0 to T, its differences the seq_tokens.
- per-layer sums: every assignment is one (token, chosen expert), so an observed run and a token
  import hold exactly ``seq_tokens[s] * K`` assignments in every layer of unit s; a counts import
  or a synthetic run records a unit's tokens as its busiest layer's assignments // K (K unknown:
  the assignments), which is checked exactly. Editing K breaks one rule or the other.
- tokens against counts: the bincount of each unit's expert ids per layer equals its counts row;
  every id is below E.
- the manifest against its identity: ``seq_len``, ``sequences``, the model and the condition as the
  identity records them, the origin (an import's identity names its format); the condition's kind
  against its provenance (a mock generator or real text); an import's ``--top-k``/``--num-experts``
  against K and E; the granularity against the origin and the files (observed: ``sequence``; an
  imported ``token``: traces); an observed run's seq_tokens <= seq_len.

Shape legend: S units (sequences, passes, one window), L MoE layers, E experts, K experts per
token, T tokens.
"""

from __future__ import annotations

import numpy as np

from dodoco.store.manifest import ConditionKind, Granularity, Manifest, Origin

__all__ = ["DTYPES", "counts_problems", "manifest_problems", "row_sums", "tokens_problems"]

DTYPES = {
    "counts.npy": ("uint32",),
    "seq_tokens.npy": ("int64",),
    "tokens.npy": ("uint8", "uint16"),
    "token_offsets.npy": ("int64",),
}
_CHUNK = 1 << 24  # elements per chunk of the sums (a large run is memory-mapped, read in pieces)


def _expected_shapes(m: Manifest) -> dict[str, tuple]:
    r, S = m.routing, m.sequences
    shapes = {"counts.npy": (S, r.L, r.E), "seq_tokens.npy": (S,), "token_offsets.npy": (S + 1,)}
    tokens = m.files.get("tokens.npy")
    if tokens is not None:
        shapes["tokens.npy"] = (tokens.shape[0] if tokens.shape else -1, r.L, r.K)
    return shapes


def manifest_problems(m: Manifest) -> list[str]:
    """The manifest's fields against its identity, its condition's provenance and its file entries
    (dtype and shape of each data file); no data read."""
    out = []
    ident = m.identity
    for key, value in (
        ("seq_len", m.seq_len),
        ("sequences", m.sequences),
        ("condition", m.condition.name),
        ("model", m.model.id),
    ):
        if ident.get(key) is not None and ident[key] != value:
            out.append(
                f"manifest.json: {key} is {value!r} but the run's identity says {ident[key]!r} (manifest edited)"
            )
    if (m.origin is Origin.IMPORTED) != ("import" in ident):
        out.append(
            f"manifest.json: origin {m.origin.value!r} but the identity is {'not ' * ('import' not in ident)}an "
            "import's (manifest edited)"
        )
    out += _granularity_problems(m)
    options = (m.details.get("source") or {}).get("options") or {} if m.origin is Origin.IMPORTED else {}
    for key, value in (("top_k", m.routing.K), ("num_experts", m.routing.E)):
        if options.get(key) is not None and options[key] != value:
            out.append(
                f"manifest.json: routing says {'K' if key == 'top_k' else 'E'}={value} but the import was "
                f"given --{key.replace('_', '-')} {options[key]} (manifest edited)"
            )
    if m.origin is not Origin.SYNTHETIC:
        mock = "generator" in m.condition.provenance
        if (m.condition.kind is ConditionKind.MOCK) != mock:
            out.append(
                f"manifest.json: condition kind is {m.condition.kind.value!r} but its provenance is "
                f"{'a mock generator' if mock else 'real text'} (manifest edited)"
            )
    if m.origin is Origin.OBSERVED and m.routing.K is None:
        out.append("manifest.json: an observed run without K (manifest edited)")
    if "counts.npy" not in m.files:
        out.append("manifest.json: lists no counts.npy")
    if ("tokens.npy" in m.files) != ("token_offsets.npy" in m.files):
        out.append("manifest.json: lists only one of tokens.npy and token_offsets.npy")
    expected = _expected_shapes(m)
    for name in m.files:
        if "/" in name or "\\" in name or name in ("", ".", "..", "manifest.json"):
            out.append(f"manifest.json: lists {name!r}, which is not a file of the run (manifest edited)")
    for name, entry in m.files.items():
        if name in DTYPES and entry.dtype not in DTYPES[name]:
            out.append(f"{name}: the manifest says dtype {entry.dtype}, but DODOCO writes {' or '.join(DTYPES[name])}")
        if name in expected and tuple(entry.shape) != expected[name]:
            out.append(
                f"{name}: the manifest says shape {list(entry.shape)}, but its routing and sequences "
                f"(S={m.sequences}, L={m.routing.L}, E={m.routing.E}, K={m.routing.K}) need "
                f"{list(expected[name])}"
            )
    return out


def _granularity_problems(m: Manifest) -> list[str]:
    """What a unit is, against who wrote the run and what it holds."""
    g = m.granularity
    if m.origin is Origin.OBSERVED and g is not Granularity.SEQUENCE:
        return [f"manifest.json: an observed run of granularity {g.value!r}, not 'sequence' (manifest edited)"]
    if g is Granularity.TOKEN and m.origin is Origin.IMPORTED and "tokens.npy" not in m.files:
        return ["manifest.json: granularity 'token' without tokens.npy (manifest edited)"]
    return []


def _array_problems(name: str, a: np.ndarray, m: Manifest) -> list[str]:
    """dtype and shape of one loaded array against the rules and its manifest entry."""
    entry = m.files.get(name)
    out = []
    if str(a.dtype) not in DTYPES.get(name, (str(a.dtype),)) or (entry and str(a.dtype) != entry.dtype):
        out.append(
            f"{name}: dtype {a.dtype}, but the manifest says {entry.dtype if entry else '?'} and DODOCO "
            f"writes {' or '.join(DTYPES.get(name, ('?',)))}"
        )
    want = _expected_shapes(m).get(name)
    if want is not None and tuple(a.shape) != want:
        out.append(f"{name}: shape {list(a.shape)}, but the manifest needs {list(want)}")
    return out


def row_sums(counts: np.ndarray) -> np.ndarray:
    """Assignments per unit and layer, int64 ``[S, L]`` of counts ``[S, L, E]`` (read in chunks)."""
    S, L, E = counts.shape
    out = np.empty((S, L), dtype=np.int64)
    step = max(1, _CHUNK // max(1, L * E))
    for a in range(0, S, step):
        out[a : a + step] = np.asarray(counts[a : a + step]).sum(axis=2, dtype=np.int64)
    return out


def _exact(m: Manifest) -> bool:
    """True when every layer of a unit holds exactly its tokens x K assignments (observed runs and
    token imports); else a unit's tokens are its busiest layer's assignments // K."""
    return m.origin is Origin.OBSERVED or m.granularity is Granularity.TOKEN


def counts_problems(m: Manifest, counts: np.ndarray, seq_tokens: np.ndarray) -> list[str]:
    """counts ``[S, L, E]`` and seq_tokens ``[S]`` against the manifest and each other (module
    docstring); the first offending unit and layer named."""
    out = _array_problems("counts.npy", counts, m) + _array_problems("seq_tokens.npy", seq_tokens, m)
    if out:
        return out
    tok = np.asarray(seq_tokens)
    if tok.size and tok.min() < 0:
        s = int(np.argmax(tok < 0))
        return [f"seq_tokens.npy: unit {s} has {tok[s]} tokens (negative)"]
    sums, K = row_sums(counts), m.routing.K
    if _exact(m) and K is None:
        out.append("manifest.json: K is unknown, but every unit of this run holds tokens x K assignments per layer")
    elif _exact(m):
        bad = sums != tok[:, None] * K
        if bad.any():
            s, l = (int(i) for i in np.argwhere(bad)[0])
            implied = sums[tok > 0] / tok[tok > 0, None]
            say = (
                f"; every unit holds {implied.flat[0]:g} assignments per token"
                if implied.size and np.all(implied == implied.flat[0])
                else ""
            )
            out.append(
                f"counts.npy: layer {l} of unit {s} holds {sums[s, l]} assignments, not its {tok[s]} tokens "
                f"(seq_tokens.npy) x K={K} = {tok[s] * K}{say}: the manifest's K or the data was changed"
            )
    else:
        busiest = sums.max(axis=1, initial=0) // (K or 1)
        if not np.array_equal(busiest, tok):
            s = int(np.argmax(busiest != tok))
            out.append(
                f"seq_tokens.npy: unit {s} records {tok[s]} tokens but its busiest layer holds {sums[s].max()} "
                f"assignments, {busiest[s]} tokens at K={K or 1}: the manifest's K or the data was changed"
            )
    if m.origin is Origin.OBSERVED and tok.size and tok.max() > m.seq_len:
        s = int(np.argmax(tok > m.seq_len))
        out.append(
            f"seq_tokens.npy: sequence {s} has {tok[s]} tokens, more than seq_len {m.seq_len}: the manifest's "
            "seq_len or the data was changed"
        )
    return out


def tokens_problems(
    m: Manifest, counts: np.ndarray, seq_tokens: np.ndarray, tokens: np.ndarray, offsets: np.ndarray
) -> list[str]:
    """Token traces ``tokens[T, L, K]``, ``offsets[S+1]`` against the manifest, seq_tokens ``[S]`` and
    counts ``[S, L, E]``: every id below E, each unit's per-layer bincount equal to its counts row."""
    out = _array_problems("tokens.npy", tokens, m) + _array_problems("token_offsets.npy", offsets, m)
    if out:
        return out
    off = np.asarray(offsets)
    if off[0] != 0 or off[-1] != tokens.shape[0] or not np.array_equal(np.diff(off), np.asarray(seq_tokens)):
        return [f"token_offsets.npy: offsets do not run from 0 to {tokens.shape[0]} tokens in steps of seq_tokens.npy"]
    E = m.routing.E
    top = int(np.asarray(tokens).max(initial=0))
    if top >= E:
        return [f"tokens.npy: expert id {top} is outside 0..{E - 1} (E={E})"]
    S, L = counts.shape[:2]
    step = max(1, _CHUNK // max(1, L * E))
    for a in range(0, S, step):
        b = min(S, a + step)
        t = np.asarray(tokens[off[a] : off[b]], dtype=np.int64)  # [T', L, K]
        unit = np.repeat(np.arange(b - a), np.diff(off[a : b + 1]))
        flat = ((unit[:, None, None] * L + np.arange(L)[None, :, None]) * E + t).reshape(-1)
        got = np.bincount(flat, minlength=(b - a) * L * E).reshape(b - a, L, E)
        bad = got != np.asarray(counts[a:b])
        if bad.any():
            s, l, e = (int(i) for i in np.argwhere(bad)[0])
            return [
                f"tokens.npy: unit {a + s} sends {got[s, l, e]} tokens to expert {e} of layer {l}, but counts.npy "
                f"says {counts[a + s, l, e]}: the traces and the counts do not belong together"
            ]
    return out
