"""``onai-db demo``: the main job on the embedded local stack."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from ..demo import run_demo


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        rows: Annotated[int, typer.Option("--rows", help="Legacy lead rows to generate.")] = 3000,
        seed: Annotated[int, typer.Option("--seed", help="Generator seed.")] = 1,
    ) -> None:
        """Local stack + access matrix + Landing → Traffic consolidation + integrations queue."""
        console = Console(width=None if Console().is_terminal else 140)
        result = run_demo(console, rows=rows, seed=seed)
        if not result.ok:
            raise typer.Exit(1)
