"""The one progress bar of long work (rich, on stderr so that stdout stays the command's results)."""

from __future__ import annotations

__all__ = ["progress_bar"]


def progress_bar(label: str, *, elapsed: bool = False, disable: bool = False, transient: bool = False):
    """A rich Progress: ``label`` (a rich format of the task, e.g. "{task.description}"), the bar, done
    of total, and the time remaining (``elapsed``: the time spent instead), on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.progress import TimeRemainingColumn

    clock = TimeElapsedColumn() if elapsed else TimeRemainingColumn()
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        clock,
        console=Console(stderr=True),
        disable=disable,
        transient=transient,
    )
