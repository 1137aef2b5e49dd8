"""The math source of scripts/build_samples.py: DeepMind's mathematics_dataset generator, run in
its own Python 3.11 venv in the work folder (it needs old sympy/numpy), with seeds fixed per
document, PYTHONHASHSEED=0 and a patched `composition.expand_entities`, so that the generated
question/answer documents are the same on every run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from samples.common import BUDGET, Doc, Source, python311, run, select

# The generator's venv, pinned (the versions found on PyPI when this script was written).
MATH_PINS = (
    "mathematics_dataset==1.0.1",
    "sympy==1.4",
    "numpy==1.23.5",  # the brief: numpy<1.24
    "mpmath==1.4.1",
    "absl-py==2.5.1",
    "six==1.17.0",
)
MATH_SEED = 20240917
MATH_PROBLEMS_PER_DOC = 50

MATH_GENERATOR = r'''
import json, random, sys
import numpy as np
from mathematics_dataset import generate_settings
from mathematics_dataset.modules import modules
from mathematics_dataset.util import composition

def expand_entities(context, **kwargs):
    """composition.expand_entities, but deduplicating entities in first-seen order instead of
    through a set() of objects hashed by address, which made the order of the "Let ..." clauses
    of composed problems differ from run to run."""
    kwargs = kwargs.copy()
    entities = context.child_entities
    for key, maybe_entity in kwargs.items():
        if isinstance(maybe_entity, composition.Entity):
            entities.append(maybe_entity)
            kwargs[key] = maybe_entity.handle
    entities = list(dict.fromkeys(entities))
    random.shuffle(entities)
    descriptions = []
    for entity in entities:
        descriptions.append(entity.child_description)
        if not entity.expression_used:
            descriptions.append(entity.description)
    return " ".join(s for s in descriptions if s), kwargs

composition.expand_entities = expand_entities

seed, n_docs, per_doc = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
flat = {}
def add(tree, prefix=None):
    for key, value in tree.items():
        name = prefix + "__" + key if prefix else key
        if isinstance(value, dict):
            add(value, name)
        else:
            flat[name] = value
add(modules.train(lambda entropy_range: entropy_range))  # the full "train" difficulty range
names = sorted(flat)

def sample(module):  # as mathematics_dataset.generate.sample_from_module: drop over-long ones
    while True:
        problem = module()
        q, a = str(problem.question), str(problem.answer)
        if len(q) <= generate_settings.MAX_QUESTION_LENGTH and \
           len(a) <= generate_settings.MAX_ANSWER_LENGTH:
            return q, a

for d in range(n_docs):
    random.seed(seed + d)
    np.random.seed((seed + d) % 2**32)
    rows = []
    for _ in range(per_doc):
        name = random.choice(names)
        q, a = sample(flat[name])
        rows.append({"module": name, "question": q, "answer": a})
    print(json.dumps({"doc": d, "problems": rows}), flush=True)
'''


def math_venv(work: Path) -> Path:
    venv = work / "mathvenv"
    py = venv / "bin" / "python"
    if not py.exists():
        run([python311(), "-m", "venv", str(venv)])
        run([str(py), "-m", "pip", "install", "-q", *MATH_PINS])
    return py


def source_math(work: Path) -> Source:
    py = math_venv(work)
    script = work / "math_generator.py"
    script.write_text(MATH_GENERATOR)
    n_docs = BUDGET["math"] // (MATH_PROBLEMS_PER_DOC * 100) + 20  # ~100 bytes per problem
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = run([str(py), str(script), str(MATH_SEED), str(n_docs), str(MATH_PROBLEMS_PER_DOC)], env=env)
    docs = []
    for line in out.splitlines():
        rec = json.loads(line)
        text = "\n\n".join(f"Question: {p['question']}\nAnswer: {p['answer']}" for p in rec["problems"])
        docs.append(Doc(f"mathematics_dataset:seed{MATH_SEED}:doc{rec['doc']:05d}", "mathematics_dataset", text))
    freeze = run([str(py), "-m", "pip", "freeze"]).split()
    pyver = run([str(py), "-c", "import platform; print(platform.python_version())"]).strip()
    src = Source(
        key="math",
        package="mathematics_dataset",
        version="1.0.1",
        obtained=f"pip install {' '.join(MATH_PINS)} into a python {pyver} venv; generated with "
        f"seed {MATH_SEED} (random and numpy reseeded with seed+doc per document, "
        f"PYTHONHASHSEED=0, composition.expand_entities patched to order entities "
        f"deterministically), modules.train() over all 56 train modules at full difficulty "
        f"range, module chosen uniformly per problem, {MATH_PROBLEMS_PER_DOC} problems "
        "per document, format 'Question: ...\\nAnswer: ...'",
        licence="Apache-2.0 (generator); generated problems",
        attribution="Mathematics Dataset generator by DeepMind (Saxton et al., 2019)",
        extra={"generator_venv": freeze},
    )
    src.docs = select(docs, BUDGET["math"])
    return src
