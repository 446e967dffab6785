"""A progress bar per phase (rich), as a callback the long-running jobs report to."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

ProgressCallback = Callable[[str, int, int | None], None]


@contextmanager
def phase_progress(
    phases: Sequence[str], console: Console, disable: bool = False
) -> Iterator[ProgressCallback]:
    """Yields ``progress(phase, advance, total)``; every bar is shown complete at the end."""
    with Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=disable,
        transient=False,
    ) as bar:
        tasks: dict[str, TaskID] = {p: bar.add_task(p, total=None, start=False) for p in phases}

        def progress(phase: str, advance: int, total: int | None) -> None:
            task = tasks[phase]
            bar.start_task(task)
            if total is not None:
                bar.update(task, total=total)
            bar.advance(task, advance)

        yield progress
        for task in tasks.values():
            t = bar.tasks[task]
            done = t.total or t.completed or 1
            bar.update(task, total=done, completed=done)
