"""``onai-db policies``: the access matrix and whether a database matches its coverage rules."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from ..connection import connect, describe_url, require_migrated
from ..errors import ConfigError
from ..local import DEFAULT_DB, LocalStack
from ..policies import coverage, exposed_schemas, load_matrix
from ..render import OutputConsole, matrix_table, plain
from ..settings import Settings

console = OutputConsole()


def register(app: typer.Typer) -> None:
    @app.command("policies")
    def policies_command(
        db: Annotated[
            str | None,
            typer.Option(
                "--db", help=f"Local database to check (default: ONAI_DB_URL if set, else {DEFAULT_DB})."
            ),
        ] = None,
        url: Annotated[str | None, typer.Option("--url", help="Any database URL.")] = None,
    ) -> None:
        """Print the access matrix and check that every exposed object is covered and protected."""
        settings = Settings.load()
        matrix = load_matrix(settings.project_dir)
        for name, value in (("--url", url), ("--db", db)):
            if value is not None and not value.strip():  # it fell back to another database
                # without a word (found by review)
                raise ConfigError(f"{name} is empty: pass a value, or leave the option out")
        if url and db:
            raise ConfigError("pass --db or --url, not both")
        env_url = None if db else settings.get("ONAI_DB_URL")
        target = url or env_url or LocalStack(settings).database_url(db or DEFAULT_DB)
        with connect(target, autocommit=True) as conn:
            # one line, not a "missing" line for each of the matrix's objects
            require_migrated(conn, target, "push them first (`onai-db local up --db NAME` for a local one)")
            report = coverage(conn, matrix, exposed_schemas(settings.project_dir))
        console.print(matrix_table(matrix))
        checked = plain(describe_url(target))  # which database the verdict is about
        if report.ok:
            console.print(
                Text.assemble(
                    ("coverage ok", "green"),
                    " in ",
                    checked,
                    f": {len(report.exposed)} exposed objects, all in policies/, RLS on every table,"
                    " every view security_invoker",
                )
            )
            return
        console.print(Text.assemble(("coverage problems", "red"), " in ", checked, ":"))
        for problem in report.problems():
            console.print(f"[red]✗[/red] {problem}")
        raise typer.Exit(1)
