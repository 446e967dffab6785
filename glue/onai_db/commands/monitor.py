"""``onai-db monitor``: integration health (thin: parse, call onai_db.monitor, print)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..connection import describe_url
from ..monitor import render, snapshot
from ..outbox import connect
from ..output_mode import result_document, want_json
from ..render import OutputConsole, plain
from ..settings import Settings
from ..worker import URL_HELP, database_choice

console = OutputConsole()


def register(app: typer.Typer) -> None:
    @app.command("monitor")
    def monitor(
        days: Annotated[int, typer.Option("--days", min=1, max=366, help="Days of per-service counts.")] = 7,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
        url: Annotated[str | None, typer.Option("--url", help=URL_HELP)] = None,
    ) -> None:
        """Queue depth, successes/failures per service per day, errors, dead jobs, Telegram groups, AmoCRM backlog."""
        want_json(as_json)
        url, origin = database_choice(Settings.load(), url)
        with connect(url) as conn:
            snap = snapshot(conn, days=days)
        # which database the figures are about, and why that one (found by the operator review)
        database = {"database": describe_url(url), "from": origin}
        if as_json:
            typer.echo(result_document({"database": database, **snap.as_dict()}))
            return
        console.print(plain(f"database {database['database']} ({origin})"), style="dim", soft_wrap=True)
        render(snap, console)
