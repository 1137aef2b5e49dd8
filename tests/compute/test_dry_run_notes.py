"""bench/compute_fits.notes_of: a CPU dry run (no CUDA, or shapes divided by --scale) says so in its first
note, which the calibration files written from it carry; a GPU run at full size never does. A label that
looked only at the device name, or only at --scale, fails one of these cases."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from compute_fits import notes_of  # noqa: E402


def _raw(device: str, cuda, scale: int) -> dict:
    return {
        "facts": {"device": device, "sms": 132, "torch": "2.11.0", "cuda": cuda},
        "date": "2026-12-07T00:00:00",
        "seconds": 1.0,
        "scale": scale,
        "peaks": {"tflops": 700.0, "hbm_GBps": 3000.0},
        "check": {},
        "megatron": "megatron: not measured",
        "rows": [],
    }


@pytest.mark.parametrize(
    ("device", "cuda", "scale", "dry"),
    [
        ("cpu", None, 32, True),
        ("cpu", None, 1, True),
        ("NVIDIA H100 80GB HBM3", "13.0", 8, True),
        ("NVIDIA H100 80GB HBM3", "13.0", 1, False),
    ],
)
def test_dry_run_is_named_first(device, cuda, scale, dry):
    notes = notes_of(_raw(device, cuda, scale), {"tables": {}, "fits": {}})
    assert ("dry run" in notes[0]) is dry
    assert notes[0].startswith("CPU dry run") is (dry and cuda is None)
    assert sum("dry run" in n for n in notes) == int(dry)
    if dry:
        assert f"divided by {scale}" in notes[0]
