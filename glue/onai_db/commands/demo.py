"""``onai-db demo``: the main job on the embedded local stack."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from ..demo import LANDING_DB, run_demo
from ..errors import ConfigError
from ..local import DEFAULT_DB


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        rows: Annotated[int, typer.Option("--rows", help="Legacy lead rows to generate.")] = 3000,
        seed: Annotated[int, typer.Option("--seed", help="Generator seed.")] = 1,
        db: Annotated[str, typer.Option("--db", help="The local stack's Traffic database.")] = DEFAULT_DB,
        landing_db: Annotated[
            str, typer.Option("--landing-db", help="The local stack's generated Landing database.")
        ] = LANDING_DB,
    ) -> None:
        """Local stack + access matrix + Landing → Traffic consolidation + integrations queue."""
        if db == landing_db:  # the Traffic database would be taken for Landing's, and refused
            raise ConfigError(f"--db and --landing-db are both {db!r}: the demo needs two databases")
        console = Console(width=None if Console().is_terminal else 140)
        result = run_demo(console, rows=rows, seed=seed, dbname=db, landing_db=landing_db)
        if not result.ok:
            raise typer.Exit(1)
