"""``onai-db worker``: run the outbox worker (thin: parse, call onai_db.worker, print)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..connection import describe_url
from ..errors import ConfigError, DeadJobsError
from ..outbox import Outbox, connect
from ..render import OutputConsole, plain
from ..settings import Settings
from ..worker import URL_HELP, checked_kinds, database_choice, run_worker

console = OutputConsole(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        once: Annotated[bool, typer.Option("--once", help="Drain the due jobs, then exit.")] = False,
        services: Annotated[
            str | None,
            typer.Option(
                "--services", help="Comma-separated kinds: email,sms,telegram,amocrm (default: configured)."
            ),
        ] = None,
        concurrency: Annotated[
            int | None,
            typer.Option(
                "--concurrency", min=1, max=64, help="Parallel jobs (default OUTBOX_CONCURRENCY, else 2)."
            ),
        ] = None,
        dry_run: Annotated[
            bool,
            typer.Option(
                "--dry-run",
                help=(
                    "Answer every provider call with its success shape and send nothing, but write:"
                    " jobs are marked done and AmoCRM leads get fake ids (local stacks and demos;"
                    " another database needs OUTBOX_ALLOW_DRY_RUN=1)."
                ),
            ),
        ] = False,
        requeue_dead: Annotated[
            bool, typer.Option("--requeue-dead", help="Revive dead jobs (of --services if given) and exit.")
        ] = False,
        url: Annotated[str | None, typer.Option("--url", help=URL_HELP)] = None,
    ) -> None:
        """Claim outbox jobs and send them (Resend, Mobizon, Telegram, AmoCRM)."""
        settings = Settings.load()
        kinds = None
        if services is not None:
            kinds = checked_kinds([s.strip() for s in services.split(",") if s.strip()])
            if not kinds:
                raise ConfigError(
                    "--services names no service; give some of email,sms,telegram,amocrm"
                    " or leave it out for every configured one"
                )
        if requeue_dead and (dry_run or once or concurrency is not None):
            # --requeue-dead revives and exits: with --dry-run it revived for real what the next
            # worker then sent (found by review)
            given = [
                o for o, v in (("--dry-run", dry_run), ("--once", once), ("--concurrency", concurrency)) if v
            ]
            raise ConfigError(
                f"--requeue-dead revives the dead jobs and exits; it takes no {', '.join(given)}:"
                " run it alone (`onai-db monitor` lists the dead jobs first)"
            )
        if requeue_dead:
            url, origin = database_choice(settings, url)
            with connect(url) as conn:
                queue = Outbox(conn)
                n = sum(queue.requeue_dead(kind=k) for k in kinds) if kinds else queue.requeue_dead()
            # it writes: say where (found by the operator review)
            console.print(
                plain(f"requeued {n} dead job(s) in {describe_url(url)} ({origin})"), soft_wrap=True
            )
            return
        report = run_worker(
            settings,
            once=once,
            services=kinds,
            concurrency=concurrency,
            dry_run=dry_run,
            db_url=None if url is None else database_choice(settings, url)[0],
            # a log line each; provider text in it is never read as markup ("[/b]" crashed the worker)
            echo=lambda m: console.print(plain(m), style="dim", soft_wrap=True),
        )
        console.print(report.summary(), soft_wrap=True)
        if once and report.dead:
            # a cron-run drain reports jobs that went dead (cron mails a failing command)
            raise DeadJobsError(
                f"{report.dead} job(s) went dead in this run: `onai-db monitor` shows why;"
                " fix the cause, then `onai-db worker --requeue-dead`"
            )
