"""Data conditions: mock token generators and real-text sources, packed into sequences.

Names: the built-ins below, ``file:PATH`` (a local .txt, .jsonl with a "text" field, or a folder of
them) and ``hf:DATASET[:CONFIG[:SPLIT[:REVISION]]]`` (Hugging Face datasets, where ``datasets`` and a
network exist). Every generator returns ``(ids[S, seq_len], provenance)``; ``provenance["identity"]``
is what makes the data this condition gives (a run resumes only with the same).
"""

from dodoco.registry import Registry

CONDITIONS = Registry("condition")
CONDITIONS.register("mock-uniform", "dodoco.conditions.mock:uniform",
                    "token IDs uniform over the vocabulary (the common benchmark mock)")
CONDITIONS.register("mock-ramp", "dodoco.conditions.mock:ramp",
                    "Megatron's mock dataset: arange modulo the vocabulary")
CONDITIONS.register("mock-unigram", "dodoco.conditions.mock:unigram",
                    "IDs drawn i.i.d. from the real-text unigram frequencies (frequency without order)")
for _domain, _what in (("prose", "English prose: Wikipedia passages (BoolQ) and the World English Bible"),
                       ("code", "Python standard library sources"),
                       ("math", "generated mathematics problems with answers"),
                       ("multilingual", "the Debian reference in de, fr, ja, zh-cn")):
    CONDITIONS.register(_domain, f"dodoco.conditions.text:{_domain}", f"{_what} (bundled, held-out split)")
CONDITIONS.register("file:", "dodoco.conditions.text:local_files", "file:PATH, a .txt/.jsonl file or folder")
CONDITIONS.register("hf:", "dodoco.conditions.text:hf_dataset",
                    "hf:DATASET[:CONFIG[:SPLIT[:REVISION]]] (needs datasets)")

MOCK = ("mock-uniform", "mock-ramp", "mock-unigram")
REAL = ("prose", "code", "math", "multilingual")


def resolve(name: str):
    """The generator behind condition ``name`` and its argument (the path or dataset for schemes)."""
    for scheme in ("file:", "hf:"):
        if name.startswith(scheme):
            return CONDITIONS.get(scheme), name[len(scheme):]
    return CONDITIONS.get(name), None


def is_mock(name: str) -> bool:
    """True for the mock generators (MOCK); every other condition is real text."""
    return name in MOCK
