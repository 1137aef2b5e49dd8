import json

import pytest

from dodoco.training.data import DOMAINS


def write_data(folder, train_chars=4000, heldout_chars=400):
    """A small training-data folder: two train documents and one held-out document per domain."""
    folder.mkdir(parents=True, exist_ok=True)
    for d in DOMAINS:
        rows = [{"split": "train", "text": (f"{d} text number {i}. " * 400)[:train_chars]} for i in range(2)]
        rows.append({"split": "heldout", "text": (f"held out {d}. " * 100)[:heldout_chars]})
        (folder / f"{d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture
def make_data():
    return write_data
