"""verify_file refuses a data file that is not a regular file: a DataError (exit 1) naming it a data file."""

import os

import numpy as np
import pytest

from dodoco.errors import DataError
from dodoco.findings.synthetic import skewed_counts, write_counts_run
from dodoco.store.manifest import read_manifest
from dodoco.store.verify import verify_file


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_data_file_that_is_not_a_regular_file_is_a_data_error_naming_it(tmp_path, kind):
    run = write_counts_run(tmp_path / "r", skewed_counts(8, 2, 4), model="m", condition="prose", kind="real", K=2)
    entry = read_manifest(run).files["counts.npy"]
    f = run / "counts.npy"
    f.unlink()
    f.mkdir() if kind == "folder" else os.mkfifo(f)
    with pytest.raises(DataError, match=r"^data file .*counts\.npy is a"):
        verify_file(run, "counts.npy", entry)


def test_an_unchanged_data_file_passes_and_its_digest_is_the_manifests(tmp_path):
    run = write_counts_run(tmp_path / "r", skewed_counts(8, 2, 4), model="m", condition="prose", kind="real", K=2)
    entry = read_manifest(run).files["counts.npy"]
    assert verify_file(run, "counts.npy", entry) == run / "counts.npy"
    np.save(run / "counts.npy", np.zeros((8, 2, 4), dtype=np.uint32))  # same size, other bytes
    os.utime(run / "counts.npy", ns=(1, 1))  # a new mtime: the cache must not answer
    with pytest.raises(DataError, match="does not match its checksum"):
        verify_file(run, "counts.npy", entry)
