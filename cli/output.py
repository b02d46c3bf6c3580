"""How commands talk: results on stdout (JSON with --json), status and progress on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from interdict import progress

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    grid = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    out.print(grid)


@contextmanager
def _bar(name: str, total: int) -> Iterator[Any]:
    with Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as bars:
        task_id = bars.add_task(name, total=total)

        class _Advance:
            def advance(self, amount: int) -> None:
                bars.advance(task_id, amount)

        yield _Advance()


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Draw progress bars for long work, only on a terminal and never into JSON output."""
    if not (enabled and err.is_terminal):
        yield
        return
    progress.use(_bar)
    try:
        yield
    finally:
        progress.use(None)


@contextmanager
def status(message: str, enabled: bool) -> Iterator[None]:
    if enabled and err.is_terminal:
        with err.status(message):
            yield
    else:
        yield
