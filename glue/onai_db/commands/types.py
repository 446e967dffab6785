"""``onai-db types``: regenerate or check the generated Python types."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import types_gen
from ..connection import connect, require_migrated
from ..local import DEFAULT_DB, LocalStack
from ..policies import exposed_schemas
from ..render import OutputConsole
from ..settings import Settings

console = OutputConsole()


def register(app: typer.Typer) -> None:
    @app.command("types")
    def types_command(
        write: Annotated[
            bool, typer.Option("--write", help="Rewrite the file (default: check only).")
        ] = False,
        db: Annotated[str, typer.Option("--db", help="Local database to read the schema from.")] = DEFAULT_DB,
    ) -> None:
        """Generate glue/onai_db/database_types.py with `supabase gen types --lang python`."""
        settings = Settings.load()
        stack = LocalStack(settings)
        url = stack.database_url(db)
        with connect(url, autocommit=True) as conn:  # else: "out of date, run make types" (wrong)
            require_migrated(conn, url, f"run `onai-db local up --db {db}` first")
        schemas = exposed_schemas(settings.project_dir)
        if write:
            result = types_gen.write(settings.project_dir, url, schemas)
            console.print(f"{result.path}: {'updated' if result.changed else 'already up to date'}")
            return
        result = types_gen.check(settings.project_dir, url, schemas)
        if result.changed:
            console.print(
                f"[red]{result.path} is out of date[/red]: run `make types` and commit it", soft_wrap=True
            )
            raise typer.Exit(1)
        console.print(f"{result.path} matches the database")
