"""``onai-db policies``: the access matrix and whether a database matches its coverage rules."""

from __future__ import annotations

from typing import Annotated

import psycopg
import typer
from rich.console import Console

from ..local import DEFAULT_DB, LocalStack
from ..policies import coverage, exposed_schemas, load_matrix
from ..render import matrix_table
from ..settings import Settings

console = Console()


def register(app: typer.Typer) -> None:
    @app.command("policies")
    def policies_command(
        db: Annotated[str, typer.Option("--db", help="Local database to check.")] = DEFAULT_DB,
        url: Annotated[
            str | None, typer.Option("--url", help="Any database URL (default: local stack).")
        ] = None,
    ) -> None:
        """Print the access matrix and check that every exposed object is covered and protected."""
        settings = Settings.load()
        matrix = load_matrix(settings.project_dir)
        target = url or settings.get("ONAI_DB_URL") or LocalStack(settings).database_url(db)
        with psycopg.connect(target, autocommit=True) as conn:
            report = coverage(conn, matrix, exposed_schemas(settings.project_dir))
        console.print(matrix_table(matrix))
        if report.ok:
            console.print(
                f"[green]coverage ok[/green]: {len(report.exposed)} exposed objects, all in policies/, "
                "RLS on every table, every view security_invoker"
            )
            return
        for problem in report.problems():
            console.print(f"[red]✗[/red] {problem}")
        raise typer.Exit(1)
