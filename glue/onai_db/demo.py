"""``onai-db demo``: the main job on the embedded local stack, start to finish.

1. the local stack: cluster, platform bootstrap, every migration pushed by the Supabase CLI;
2. the access matrix and the coverage check against the live database;
3. a legacy Landing database filled with realistic messy data;
4. the consolidation into Traffic (backup, dedupe, verification) and the attribution
   per targetologist, plus what each role sees of it through RLS;
5. the integrations queue: welcome e-mail, lead notifications and AmoCRM sync jobs,
   worked once in dry-run mode (nothing leaves the machine), and the monitor.

Every step is idempotent: running the demo again consolidates nothing new.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from . import monitor, notifications, worker
from .connection import connect
from .consolidate import ConsolidationOptions, run_consolidation
from .consolidate.demo import attribution_summary, seed_demo_targetologists
from .consolidate.render import render_attribution, render_report
from .consolidate.runner import PHASES, preflight
from .legacy import create_landing_db
from .local import DEFAULT_DB, LocalStack
from .policies import coverage, exposed_schemas, load_matrix
from .progress import phase_progress
from .render import matrix_table, plain
from .settings import Settings

LANDING_DB = "landing"
# who looks at the consolidated leads, as PostgREST would run their requests
VIEWERS = (
    ("anon (no JWT)", "anon", None),
    ("student", "authenticated", "10000000-0000-4000-8000-000000000007"),
    ("targetologist Arystan", "authenticated", "10000000-0000-4000-8000-000000000002"),
    ("sales manager", "authenticated", "10000000-0000-4000-8000-000000000006"),
    ("admin", "authenticated", "10000000-0000-4000-8000-000000000001"),
    ("service_role", "service_role", None),
)


@dataclass
class DemoResult:
    ok: bool
    migrations: int
    leads: int
    seconds: float


def visible_leads(authenticator_url: str) -> list[tuple[str, int | str]]:
    """How many live leads each role sees, one PostgREST-style request each."""
    out: list[tuple[str, int | str]] = []
    with connect(authenticator_url) as conn:
        for label, role, sub in VIEWERS:
            claims = {"role": role, **({"sub": sub, "aud": "authenticated"} if sub else {})}
            try:
                with conn.transaction():
                    conn.execute(
                        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                        (role, json.dumps(claims)),
                    )
                    row = conn.execute("select count(*) from public.landing_leads").fetchone()
                out.append((label, int(row[0]) if row else 0))
            except psycopg.errors.InsufficientPrivilege:
                out.append((label, "denied (42501 → HTTP 401)"))
    return out


def run_demo(
    console: Console, rows: int = 3000, seed: int = 1, dbname: str = DEFAULT_DB, landing_db: str = LANDING_DB
) -> DemoResult:
    started = time.monotonic()
    settings = Settings.load()
    stack = LocalStack(settings, echo=lambda m: console.print(plain(m), style="dim"))

    console.rule("[bold]1/5 Local stack")
    state = stack.up(dbname)
    status = stack.status(dbname)
    url = state.url("postgres", dbname)
    console.print(
        f"PostgreSQL 15 on 127.0.0.1:{state.port}, platform bootstrap applied, "
        f"[bold]{len(status.applied)}[/bold] migrations applied by `supabase db push`, "
        f"{len(status.pending)} pending"
    )

    console.rule("[bold]2/5 Access matrix")
    matrix = load_matrix(settings.project_dir)
    with connect(url, autocommit=True) as conn:
        report = coverage(conn, matrix, exposed_schemas(settings.project_dir))
    console.print(matrix_table(matrix))
    if report.ok:
        console.print(
            f"[green]coverage ok[/green]: {len(report.exposed)} exposed objects, all in policies/, "
            "RLS on every table, every view security_invoker"
        )
    else:
        for problem in report.problems():
            console.print(f"[red]✗[/red] {problem}")

    console.rule("[bold]3/5 Legacy Landing database")
    source_url, counts = create_landing_db(stack, landing_db, rows=rows, seed=seed)
    table = Table(title=f"generated legacy data (seed {seed})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in counts.rows.items():
        table.add_row(name, f"{n:,}")
    console.print(table)

    console.rule("[bold]4/5 Consolidation Landing → Traffic")
    with connect(url, autocommit=True) as conn:
        seed_demo_targetologists(conn)
    preflight(source_url, url)
    backup_dir = settings.local_dir / "backups" / time.strftime("landing-%Y%m%dT%H%M%S")
    with phase_progress(PHASES, console) as progress:
        result = run_consolidation(
            ConsolidationOptions(
                source_url=source_url, target_url=url, backup_dir=backup_dir, progress=progress
            )
        )
    render_report(console, result)
    with connect(url) as conn:
        render_attribution(console, attribution_summary(conn))
        leads = conn.execute("select count(*) from public.traffic_leads where merged_into is null").fetchone()
    seen = Table(title="What each role sees of public.landing_leads (RLS, as PostgREST runs it)")
    seen.add_column("request as")
    seen.add_column("live leads visible", justify="right")
    for label, visible in visible_leads(state.url("authenticator", dbname)):
        seen.add_row(label, str(visible))
    console.print(seen)
    console.print(f"backup of the Landing tables: {_relative(backup_dir, settings.project_dir)}")

    console.rule("[bold]5/5 Integrations queue")
    with connect(url, autocommit=True) as conn:
        before = _outbox_jobs_per_kind(conn)
        queued = notifications.enqueue_demo_notifications(conn)
        after = _outbox_jobs_per_kind(conn)
    new = {kind: after.get(kind, 0) - before.get(kind, 0) for kind in ("email", "telegram", "amocrm")}
    requested = queued.welcome_emails + queued.telegram_jobs + queued.amocrm_sync_jobs
    if requested and not any(new.values()):
        console.print("queued nothing new: an earlier run queued these jobs (each is queued once)")
    else:
        console.print(
            f"queued: {new['email']} welcome e-mail(s) with a set-password link (no password stored), "
            f"{new['telegram']} Telegram lead notification(s), {new['amocrm']} AmoCRM sync job(s)"
            + (
                " (others were queued by an earlier run: each job is queued once)"
                if sum(new.values()) < requested
                else ""
            )
        )
    done = worker.run_worker(
        settings, once=True, dry_run=True, db_url=url, services=["email", "telegram", "amocrm"]
    )
    console.print(f"worker --once --dry-run: {done.summary()}")
    with connect(url, autocommit=True) as conn:
        monitor.render(monitor.snapshot(conn), console)

    elapsed = time.monotonic() - started
    ok = report.ok and result.ok
    console.print(
        Panel(
            f"{'[green]demo ok' if ok else '[red]demo found problems'}[/] in {elapsed:.0f} s — "
            f"{leads[0] if leads else 0:,} live leads in Traffic; try `onai-db local psql`, `onai-db monitor`.",
            expand=False,
        )
    )
    return DemoResult(ok, len(status.applied), int(leads[0]) if leads else 0, elapsed)


def _outbox_jobs_per_kind(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute("select kind, count(*) from public.outbox_jobs group by kind").fetchall()
    return {str(kind): int(n) for kind, n in rows}


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
