"""Data conditions: mock token generators and real-text sources, packed into sequences.

Names: the built-ins below, ``file:PATH`` (a local .txt, .jsonl with a "text" field, or a folder of
them) and ``hf:DATASET[:CONFIG[:SPLIT[:REVISION]]]`` (Hugging Face datasets, where ``datasets`` and a
network exist). Every generator returns ``(ids[S, seq_len], provenance)``; ``provenance["identity"]``
is what makes the data this condition gives (a run resumes only with the same).
"""

from dodoco.registry import Registry

CONDITIONS = Registry("condition")
for _name, _target, _what in (
    ("mock-uniform", "mock:uniform", "token IDs uniform over the vocabulary (the common benchmark mock)"),
    ("mock-ramp", "mock:ramp", "Megatron's mock dataset: arange modulo the vocabulary"),
    (
        "mock-unigram",
        "mock:unigram",
        "IDs drawn i.i.d. from the real-text unigram frequencies (frequency without order)",
    ),
    (
        "prose",
        "text:prose",
        "English prose: Wikipedia passages (BoolQ) and the World English Bible (bundled, held-out split)",
    ),
    ("code", "text:code", "Python standard library sources (bundled, held-out split)"),
    ("math", "text:math", "generated mathematics problems with answers (bundled, held-out split)"),
    ("multilingual", "text:multilingual", "the Debian reference in de, fr, ja, zh-cn (bundled, held-out split)"),
    ("file:", "text:local_files", "file:PATH, a .txt/.jsonl file or folder"),
    ("hf:", "text:hf_dataset", "hf:DATASET[:CONFIG[:SPLIT[:REVISION]]] (needs datasets)"),
):
    CONDITIONS.register(_name, f"dodoco.conditions.{_target}", _what)

MOCK = ("mock-uniform", "mock-ramp", "mock-unigram")
REAL = ("prose", "code", "math", "multilingual")


def resolve(name: str):
    """The generator behind condition ``name`` and its argument (the path or dataset for schemes)."""
    for scheme in ("file:", "hf:"):
        if name.startswith(scheme):
            return CONDITIONS.get(scheme), name[len(scheme) :]
    return CONDITIONS.get(name), None


def is_mock(name: str) -> bool:
    """True for the mock generators (MOCK); every other condition is real text."""
    return name in MOCK
