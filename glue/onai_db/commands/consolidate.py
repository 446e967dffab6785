"""``onai-db consolidate``: Landing -> Traffic consolidation (thin: parse, call, print)."""

from __future__ import annotations

import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..connection import checked_url_option, connect, describe_url
from ..consolidate import ConsolidationOptions, run_consolidation
from ..consolidate.backup import check_writable
from ..consolidate.demo import attribution_summary
from ..consolidate.render import render_attribution, render_report
from ..consolidate.runner import MAX_BATCH_SIZE, MAX_JOBS, PHASES, preflight
from ..errors import ConfigError, MissingDependencyError, StackError
from ..local import LocalStack
from ..output_mode import error_document, json_context, result_document, want_json
from ..progress import phase_progress
from ..render import OutputConsole, plain
from ..settings import Settings

console = OutputConsole()
err_console = Console(stderr=True, soft_wrap=True)  # one line per message in logs


def _interrupt(_signum: int, _frame: object) -> None:
    """The first Ctrl-C or SIGTERM stops the run; later ones are ignored while it records the
    stop and prints its message (a second Ctrl-C 0.15 s later killed it mid-record, and a
    --json run lost its document; found by review)."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    raise KeyboardInterrupt


def _target_url(settings: Settings, target: str | None) -> tuple[str, str]:
    """The target's URL and where it came from (the run names both, found by review: an
    exported DATABASE_URL beat .env's TRAFFIC_DB_URL and the report said nothing)."""
    if target:
        return target, "--target"
    env = settings.get("ONAI_DB_URL")
    if env:
        return env, settings.origin("ONAI_DB_URL") or "ONAI_DB_URL"
    try:
        return LocalStack(settings, echo=lambda _m: None).database_url(), "the local stack"
    except (StackError, MissingDependencyError):
        # not "start the local stack": on a server that is the wrong advice (found by review)
        raise ConfigError(
            "no target: pass --target or set ONAI_DB_URL (or TRAFFIC_DB_URL, DATABASE_URL, SUPABASE_DB_URL);"
            " the local stack, the default otherwise, is not running"
        ) from None


def register(app: typer.Typer) -> None:
    @app.command("consolidate")
    def consolidate(
        source: Annotated[
            str | None, typer.Option("--source", help="Landing Postgres URL (default: LANDING_DB_URL).")
        ] = None,
        target: Annotated[
            str | None,
            typer.Option(
                "--target", help="Traffic Postgres URL (default: ONAI_DB_URL / TRAFFIC_DB_URL, else local)."
            ),
        ] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Do everything, then roll back.")] = False,
        backup_dir: Annotated[
            Path | None,
            typer.Option("--backup-dir", help="Where the CSV backup goes (default backups/landing-<ts>)."),
        ] = None,
        batch_size: Annotated[
            int,
            typer.Option(
                "--batch-size",
                min=1,
                max=MAX_BATCH_SIZE,
                help="Lead rows per committed batch. Live API calls about a person in a batch wait for its"
                " commit (8 s API statement timeout): keep the default on a live Traffic.",
            ),
        ] = 20_000,
        # ranges checked by the parser, like every other command's (kind usage): --jobs 0 was
        # config where --concurrency 0 was usage (found by the operator review)
        jobs: Annotated[
            int,
            typer.Option("--jobs", min=1, max=MAX_JOBS, help="Batches applied in parallel (connections)."),
        ] = 2,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report on stdout.")] = False,
        attribution: Annotated[
            bool, typer.Option("--attribution", help="Also print consolidated leads per targetologist.")
        ] = False,
    ) -> None:
        """Move Landing leads, journey and notifications into Traffic: backup, dedupe, verify, resumable."""
        want_json(as_json)
        for name, value in (("--source", source), ("--target", target)):
            if value is not None:
                checked_url_option(value, name)
        if backup_dir is not None and str(backup_dir).strip() in ("", "."):
            # an unset $BACKUP_DIR in a script put Landing's personal data into the working directory
            raise ConfigError(
                "--backup-dir is empty (or '.'): pass a directory of its own, or leave the option out"
            )
        settings = Settings.load()
        src = source or settings.get("LANDING_DB_URL")
        if not src:
            raise ConfigError("no source: pass --source or set LANDING_DB_URL")
        src_from = "--source" if source else settings.origin("LANDING_DB_URL") or "LANDING_DB_URL"
        tgt, tgt_from = _target_url(settings, target)
        endpoints = {
            "source": {"database": describe_url(src), "from": src_from},
            "target": {"database": describe_url(tgt), "from": tgt_from},
        }
        json_context(**endpoints)
        where = plain(
            " -> ".join(f"{side} {e['database']} ({e['from']})" for side, e in endpoints.items())
            + (", dry run" if dry_run else "")
        )
        if err_console.is_terminal:  # a person watching sees where it writes before it does;
            err_console.print(where, highlight=False)  # a log keeps an error to its one line
        # systemd, Kubernetes and `timeout` stop a run with SIGTERM: the same clean stop as Ctrl-C,
        # from the preflight on (it may wait for a lock on Landing's tables)
        seen: set[str] = set()  # the phases reached: an interrupt's message says what was written
        previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}

        def notice(line: str) -> None:
            err_console.print(plain(line), highlight=False)

        try:
            preflight(src, tgt, notice)  # bad input: one line, before any progress output
            if backup_dir is not None:
                check_writable(backup_dir)
            # the bars only for a person watching (`--json > report.json` in a terminal too), never
            # in a captured stderr: a log got the bars' last frame, which the report's phase
            # seconds already say (found by the operator review)
            quiet = not err_console.is_terminal
            with phase_progress(PHASES, err_console, disable=quiet) as bar:

                def progress(phase: str, advance: int, total: int | None) -> None:
                    seen.add(phase)
                    bar(phase, advance, total)

                report = run_consolidation(
                    ConsolidationOptions(
                        source_url=src,
                        target_url=tgt,
                        backup_dir=backup_dir,
                        batch_size=batch_size,
                        jobs=jobs,
                        dry_run=dry_run,
                        progress=progress,
                        notice=notice,
                    )
                )
        except KeyboardInterrupt:
            if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:  # stopped by a signal (_interrupt):
                previous.clear()  # further ones stay ignored until the process exits
            if dry_run:
                message = "interrupted: nothing was written (dry run)"
            elif not seen - {"backup"}:  # the target is written only after the backup
                message = (
                    "interrupted before the target was written (preflight or backup): nothing was written;"
                    " run the same command again"
                )
            else:
                message = "interrupted: batches committed so far stay; run the same command again to resume"
            err_console.print(message, highlight=False)
            if as_json:
                typer.echo(error_document(message, 130, "interrupted"))
            sys.exit(130)  # not typer.Exit(130): the CLI reports that as an unreported Ctrl-C
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        rows = []
        if attribution and not dry_run:
            with connect(tgt, "target (Traffic)") as conn:
                rows = attribution_summary(conn)
        # a dry run's leads were rolled back: there is nothing to attribute (not "no leads")
        if as_json:
            # `attribution` always there: null when not asked for, or for a dry run (its leads
            # were rolled back), so a script reads one shape
            per_owner = [asdict(r) for r in rows] if attribution and not dry_run else None
            doc = {**endpoints, **report.to_json(), "attribution": per_owner}
            typer.echo(result_document(doc, ok=report.ok))
        else:
            console.print(where, highlight=False)
            render_report(console, report)
            if attribution and dry_run:
                console.print("attribution: not shown for a dry run (its leads were rolled back)")
            elif attribution:
                render_attribution(console, rows)
        if not report.ok:
            raise typer.Exit(1)
