"""``onai-db monitor``: integration health (thin: parse, call onai_db.monitor, print)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..monitor import render, snapshot
from ..outbox import connect
from ..output_mode import want_json
from ..render import OutputConsole
from ..settings import Settings
from ..worker import database_url

console = OutputConsole()


def register(app: typer.Typer) -> None:
    @app.command("monitor")
    def monitor(
        days: Annotated[int, typer.Option("--days", min=1, max=366, help="Days of per-service counts.")] = 7,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Queue depth, successes/failures per service per day, errors, dead jobs, Telegram groups, AmoCRM backlog."""
        want_json(as_json)
        with connect(database_url(Settings.load())) as conn:
            snap = snapshot(conn, days=days)
        if as_json:
            typer.echo(json.dumps(snap.as_dict(), default=str, indent=2))
            return
        render(snap, console)
