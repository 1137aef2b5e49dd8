"""Whose machine a prediction's calibration comes from, and whether that is this machine or the cluster named.

A dispatch calibration does not travel between machines (docs/dispatch.md, "What carries across
machines"), so every output of ``dodoco simulate`` says which host its calibration was measured on
and, beside the numbers, whether that host differs from

- this machine, when GPUs are visible here (``dodoco.host.compare``: GPU, count, interconnect first,
  then driver, CUDA, NCCL and torch versions); without GPUs nothing is compared and it says so;
- the cluster the user names (``--cluster``): its GPU, and its GPUs per node against the host's GPU
  count (a calibration of fewer GPUs than a node extrapolates to the larger N).

``host_check(cal, cluster)`` returns the fields every row, the title and the notes carry;
``calibration_compute`` picks the expert-compute model a ``dodoco calibrate`` file carries (measured
on the same host as its dispatch fits) unless ``--compute-calibration`` names another.
"""

from __future__ import annotations

import shutil

__all__ = ["calibration_compute", "current_host", "host_check"]

THIS_MACHINE = "this machine"


def current_host() -> dict | None:
    """This host's identity when a GPU is visible, else None (no torch import without nvidia-smi)."""
    if shutil.which("nvidia-smi") is None:
        return None
    from dodoco.host import host_identity

    host = host_identity()
    return host if host.get("gpu_count") else None


def _cluster_diffs(host: dict, cluster) -> list[str]:
    from dodoco.host import gpu_key

    out = []
    if cluster.gpu and host.get("gpu_key") and gpu_key(cluster.gpu) != host["gpu_key"]:
        out.append(f"cluster {cluster.name} has {gpu_key(cluster.gpu)} GPUs, the calibration's host {host['gpu_key']}")
    count = host.get("gpu_count")
    if count and count < cluster.gpus_per_node:
        out.append(
            f"cluster {cluster.name} has {cluster.gpus_per_node} GPUs per node, the calibration's host {count} "
            f"(fits of N <= {count} stand in for larger N)"
        )
    return out


def host_check(cal, cluster, here: dict | None = None, probe: bool = True) -> dict:
    """{"calibration_host", "host_check", "title", "notes"} for a Calibration (None: uncalibrated) on a
    cluster; ``here``: this host's identity (default: ``current_host()`` when ``probe``)."""
    from dodoco.host import compare, describe

    if cal is None:
        return {
            "calibration_host": "none (uncalibrated)",
            "host_check": "uncalibrated: nominal numbers",
            "title": "",
            "notes": [],
        }
    host = cal.host or {}
    who = describe(host)
    if cal.dry_run:
        return {
            "calibration_host": who,
            "host_check": "DRY RUN calibration (gloo on CPU): not a measurement",
            "title": "; DRY RUN CALIBRATION, NOT A MEASUREMENT",
            "notes": ["the calibration is a dry run"],
        }
    here = current_host() if here is None and probe else here
    hw, sw = compare(host, here) if here else ([], [])
    parts = []
    if here is None:
        parts.append("not compared with this machine (no GPU visible here)")
    elif hw:
        parts.append("ANOTHER MACHINE than this one: " + "; ".join(hw))
    else:
        parts.append(THIS_MACHINE + (f" (other software: {'; '.join(sw)})" if sw else ""))
    other = _cluster_diffs(host, cluster)
    if other:
        parts.append("NOT THE CLUSTER NAMED: " + "; ".join(other))
    check = "; ".join(parts)
    warn = bool(hw or other)
    notes = [f"calibration measured on {who}: {check}"]
    if warn:
        notes.append(
            "a dispatch calibration carried to another machine missed real routing by 5.8-12.1% median "
            "(skewed cases by 15-23%) in DODOCO's checks: make one here with `dodoco calibrate` "
            "(docs/dispatch.md)"
        )
    return {"calibration_host": who, "host_check": check, "title": f"; {check}" if warn else "", "notes": notes}


def calibration_compute(cal, cfg, default):
    """The compute model to predict with: ``--compute-calibration`` (already in ``default``) wins, then the
    model of ``cfg.kernel`` the calibration file carries, else ``default`` (the shipped one, or None)."""
    if cal is None or cfg.compute_calibration:
        return default
    return cal.compute_model(cfg.kernel) or default
