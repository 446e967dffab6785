"""``onai-db legacy create``: the legacy Landing database fixture in the local cluster."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from ..legacy import create_landing_db
from ..local import LocalStack
from ..output_mode import result_document, want_json
from ..render import OutputConsole, plain
from ..settings import Settings

console = OutputConsole()
err_console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    legacy_app = typer.Typer(help="Legacy Landing database fixture (tests and demo).", no_args_is_help=True)
    app.add_typer(legacy_app, name="legacy")

    @legacy_app.command("create")
    def create(
        db: Annotated[str, typer.Option("--db", help="Database name in the local cluster.")] = "landing",
        rows: Annotated[int, typer.Option("--rows", help="Lead rows over the three lead tables.")] = 3000,
        seed: Annotated[int, typer.Option("--seed", help="Generator seed (same seed, same data).")] = 1,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Create or refresh a legacy Landing database filled with generated messy data; prints its URL."""
        want_json(as_json)
        stack = LocalStack(Settings.load(), echo=lambda m: err_console.print(plain(m), style="dim"))
        url, counts = create_landing_db(stack, db, rows=rows, seed=seed)
        if as_json:
            typer.echo(result_document({"url": url, "rows": counts.rows}))
            return
        for table, n in counts.rows.items():
            err_console.print(f"{table}: {n:,} rows")
        typer.echo(url)
