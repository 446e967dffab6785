"""Orchestrates a consolidation run: preflight, backup, stage, identity, batches,
journey and notifications, verification; the ledger makes every step resumable."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from ..connection import connect, describe_error
from ..errors import ConsolidationError
from ..migrate import Migration, local_migrations
from . import apply, backup, identity, load
from .backup import Progress
from .connect import check_same_source, check_source, check_target, json_typed_columns
from .verify import Report, verify

PHASES = ("backup", "stage", "identity", "leads", "journey", "verify")
LOCK_KEY = 7_120_026_112_113  # advisory lock: one consolidation at a time per target


def _no_progress(_phase: str, _advance: int, _total: int | None) -> None:
    return None


def _no_notice(_message: str) -> None:
    return None


@dataclass
class ConsolidationOptions:
    source_url: str
    target_url: str
    backup_dir: Path | None = None
    batch_size: int = 20_000
    dry_run: bool = False
    jobs: int = 2  # batches applied in parallel on this many connections (1 in a dry run)
    lock_wait_s: float = 15.0  # how long to wait for another run's lock on the target
    progress: Callable[[str, int, int | None], None] = field(default=_no_progress)
    notice: Callable[[str], None] = field(default=_no_notice)  # a line for the operator (a wait)


def _take_lock(
    conn: psycopg.Connection, wait_s: float = 15.0, notice: Callable[[str], None] = _no_notice
) -> None:
    """One consolidation per target. A run killed a moment ago may still hold the lock
    until its server session notices the lost client, hence the short wait, which is
    announced (it was silent for its 15 s). A run that still holds it at the end is named
    (its server process, since when, from where)."""
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        got = conn.execute("select pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        if got and got[0]:
            if announced:
                notice("the other run's lock is free: going on")
            return
        if not announced:
            announced = True
            notice(
                f"another onai-db consolidate holds this target{_lock_holder(conn)};"
                f" waiting up to {wait_s:g} s for it to end"
            )
        if time.monotonic() > deadline:
            raise ConsolidationError(
                f"another onai-db consolidate is running against this target{_lock_holder(conn)};"
                " wait for it (or stop it: Ctrl-C or SIGTERM to that onai-db command; from the"
                " database, pg_terminate_backend() of the server process named)",
                kind="busy",
            )
        time.sleep(0.5)


def _lock_holder(conn: psycopg.Connection) -> str:
    """ " (server process N, since HH:MM:SS UTC, from ADDRESS)" for the session holding the
    run lock, when the login may see it; "" otherwise."""
    row = conn.execute(
        "select a.pid, to_char(a.backend_start at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS'),"
        " coalesce(host(a.client_addr), 'a local socket')"
        " from pg_catalog.pg_locks as l join pg_catalog.pg_stat_activity as a on a.pid = l.pid"
        " where l.locktype = 'advisory' and l.granted and l.database = ("
        "   select oid from pg_catalog.pg_database where datname = current_database())"
        " and l.classid::bigint = %s and l.objid::bigint = %s and l.objsubid = 1",
        (LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF),
    ).fetchone()
    return f" (server process {row[0]}, since {row[1]} UTC, from {row[2]})" if row else ""


def _tune(conn: psycopg.Connection) -> None:
    """Session settings for bulk work (this session only)."""
    _no_timeouts(conn)
    # legacy timestamps without a time zone are read as UTC, whatever the target's setting
    conn.execute("set timezone = 'UTC'")
    conn.execute("set standard_conforming_strings = on")  # the run's SQL writes '\' as a plain character
    conn.execute("set synchronous_commit = off")  # a lost commit is redone by the idempotent re-run
    conn.execute("set work_mem = '256MB'")
    conn.execute("set temp_buffers = '1GB'")  # the batch's temp tables stay in memory
    conn.execute("set jit = off")  # JIT would compile the journey stage trigger's query on every batch
    conn.commit()


def _no_timeouts(conn: psycopg.Connection) -> None:
    """A login's or database's statement, lock or idle timeout (Supabase sets some) must not
    cut a long backup or batch short: this session waits as long as its work takes (and the
    target's idles while the source is backed up)."""
    for name in (
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "idle_session_timeout",
    ):
        conn.execute(f"set {name} = 0")
    conn.commit()


# a batch that lost a deadlock or a serialization conflict to a live writer (or to another
# job, once live writes linked persons of two batches) is rolled back and applied again
BATCH_ATTEMPTS = 5
# (a unique violation: a live writer took a phone or email again between the batch's rejoin
# and its update; the retry reads the new state)
RETRYABLE = (
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.UniqueViolation,
)


def _apply_one(
    conn: psycopg.Connection, run_id: int, batch: int, commit: Callable[[], None], *, retry: bool
) -> apply.BatchResult:
    """One batch in its own transaction; retried from scratch after a deadlock (not in a
    dry run, whose batches share one transaction that a rollback would undo)."""
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            result = apply.apply_batch(conn, run_id, batch)
            commit()
            return result
        except RETRYABLE:
            if not retry or attempt == BATCH_ATTEMPTS:
                raise
            conn.rollback()
            time.sleep(random.uniform(0.05, 0.25) * attempt)
    raise AssertionError("unreachable")


def _journey_phase(tgt: psycopg.Connection, run_id: int, progress: Progress) -> dict[str, int]:
    """Journey rows not reached through a batch, notifications, the quarantine's releases and
    persons split by live writers; returns the changes it made."""
    changes = dict.fromkeys(
        (
            "journey_rows",
            "quarantined",
            "quarantine_reasons_updated",
            "notifications",
            "notifications_updated",
            "quarantine_released",
            "persons_rejoined",
        ),
        0,
    )
    imported, q, qu = apply.finish_journey(tgt, run_id)
    changes["journey_rows"] += imported
    changes["quarantined"] += q
    changes["quarantine_reasons_updated"] += qu
    progress("journey", 1, 2)
    changes["notifications_updated"] += apply.refresh_notification_delivery(tgt)
    imported, q, qu = apply.import_notifications(tgt, run_id)
    changes["notifications"] += imported
    changes["quarantined"] += q
    changes["quarantine_reasons_updated"] += qu
    changes["quarantine_released"] += apply.release_resolved_quarantine(tgt)
    changes["persons_rejoined"] += apply.reconcile_split_persons(tgt)
    return changes


def _apply_batches(
    tgt: psycopg.Connection,
    url: str,
    run_id: int,
    batches: int,
    jobs: int,
    commit: Callable[[], None],
    retry: bool = True,
) -> Iterator[apply.BatchResult]:
    """Applies batches 0..n-1, each in its own committed transaction. Batches hold
    disjoint persons (and every lead a person already had), so ``jobs`` connections can
    apply them at once; results are yielded as batches commit."""
    if jobs == 1:
        for batch in range(batches):
            yield _apply_one(tgt, run_id, batch, commit, retry=retry)
        return
    extra = [connect(url, "target (Traffic)") for _ in range(jobs - 1)]
    for conn in extra:
        _tune(conn)
    pending = iter(range(batches))
    lock = threading.Lock()
    failed = threading.Event()

    def work(conn: psycopg.Connection) -> list[apply.BatchResult]:
        out: list[apply.BatchResult] = []
        while not failed.is_set():
            with lock:
                batch = next(pending, None)
            if batch is None:
                break
            try:
                out.append(_apply_one(conn, run_id, batch, conn.commit, retry=retry))
            except BaseException:
                failed.set()
                conn.rollback()
                raise
            results.put(out[-1])
        return out

    results: queue.Queue[apply.BatchResult] = queue.Queue()
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(work, conn) for conn in (tgt, *extra)]
            try:
                done = 0
                while done < batches and not failed.is_set():
                    try:
                        yield results.get(timeout=0.2)
                        done += 1
                    except queue.Empty:
                        if all(f.done() for f in futures):
                            break
                for f in futures:
                    f.result()  # re-raise a worker's error
                while not results.empty():
                    yield results.get()
            except BaseException:
                # Ctrl-C (or the caller giving up): no worker starts another batch; leaving the
                # pool waits for the batches already running, each committed or rolled back whole
                failed.set()
                raise
    finally:
        for conn in extra:
            conn.close()


# a batch is one transaction: beyond this its temp tables and locks outgrow any sane setting
MAX_BATCH_SIZE = 1_000_000
MAX_JOBS = 16  # connections to the target applying batches at once


def option_problem(batch_size: int, jobs: int) -> str | None:
    """What is wrong with ``--batch-size`` / ``--jobs`` (None when both are usable)."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        return f"--batch-size must be between 1 and {MAX_BATCH_SIZE:,}, not {batch_size}"
    if not 1 <= jobs <= MAX_JOBS:
        return f"--jobs must be between 1 and {MAX_JOBS}, not {jobs}"
    return None


# the checkout this code belongs to (glue/onai_db/consolidate/runner.py -> the repository)
CHECKOUT = Path(__file__).resolve().parents[3]


def checkout_migrations() -> list[Migration]:
    """The migrations of the checkout this code belongs to, which the target must all have
    (none when the package runs without its checkout: then the target's tables are all that
    is checked). Never the current directory's project: that may be another one."""
    if not (CHECKOUT / "glue" / "onai_db").is_dir():
        return []
    return local_migrations(CHECKOUT)


def preflight(source_url: str, target_url: str, notice: Callable[[str], None] = lambda _line: None) -> None:
    """Connects to both databases and checks their schemas; raises a one-line error.
    ``notice`` says when it waits for Landing's tables, as the run itself does (it waited
    without a word before; found by review)."""
    src = connect(source_url, "source (Landing)")
    try:
        _no_timeouts(src)
        check_source(src, notice)
        tgt = connect(target_url, "target (Traffic)")
        try:
            _no_timeouts(tgt)
            check_target(tgt, checkout_migrations(), CHECKOUT)
            check_same_source(src, tgt, notice)
        finally:
            tgt.close()
    finally:
        src.close()


def run_consolidation(opts: ConsolidationOptions) -> Report:
    """Run (or resume) the consolidation; returns the verification report.

    Nothing is written to the target before both databases pass the preflight and the
    backup is complete. With ``dry_run`` everything happens in one transaction that is
    rolled back at the end (the report says what would happen)."""
    problem = option_problem(opts.batch_size, opts.jobs)
    if problem:
        raise ConsolidationError(problem, kind="config")
    progress = opts.progress
    src = connect(opts.source_url, "source (Landing)")
    tgt = connect(opts.target_url, "target (Traffic)")
    run_id: int | None = None
    current = "preflight"  # the phase under way, for an error's message
    try:
        _no_timeouts(src)
        _no_timeouts(tgt)
        columns, types = check_source(src, opts.notice)
        json_columns = json_typed_columns(src)
        check_target(tgt, checkout_migrations(), CHECKOUT)
        check_same_source(src, tgt, opts.notice)
        tgt.autocommit = True
        _take_lock(tgt, opts.lock_wait_s, opts.notice)
        tgt.autocommit = False
        _tune(tgt)

        seconds: dict[str, float] = {}
        current = "backup"
        t0 = time.perf_counter()
        if opts.backup_dir is None:
            backup.remove_abandoned_default_backups()
        manifest = backup.backup_tables(
            src, columns, types, opts.backup_dir or backup.default_backup_dir(), progress, opts.notice
        )
        seconds["backup"] = time.perf_counter() - t0

        def commit() -> None:
            if not opts.dry_run:
                tgt.commit()

        # a run killed on the way is still 'running'; one that stopped on Ctrl-C or an error is
        # 'interrupted' or 'failed' with the phase it stopped in (a run that went to the end has
        # none): this run goes on from what the last of them committed, and says so
        tgt.execute(
            "update private.consolidation_runs set status = 'interrupted', finished_at = now() "
            "where status = 'running'"
        )
        last = tgt.execute(
            "select id from private.consolidation_runs where status in ('interrupted', 'failed')"
            " and phase is not null and id = (select max(id) from private.consolidation_runs)"
        ).fetchone()
        resumed_from = int(last[0]) if last else None
        row = tgt.execute(
            "insert into private.consolidation_runs (source_fingerprint, status, phase, batch_size, resumed_from) "
            "values (%s, %s, 'stage', %s, %s) returning id",
            (manifest.fingerprint, "dry_run" if opts.dry_run else "running", opts.batch_size, resumed_from),
        ).fetchone()
        assert row is not None
        run_id = int(row[0])
        commit()
        report = Report(
            run_id=run_id,
            dry_run=opts.dry_run,
            resumed_from=resumed_from,
            backup_dir=str(manifest.directory),
            fingerprint=manifest.fingerprint,
        )

        def phase(name: str) -> None:
            tgt.execute("update private.consolidation_runs set phase = %s where id = %s", (name, run_id))

        current = "stage"
        t0 = time.perf_counter()
        json_kept = load.load_raw(tgt, manifest, progress, json_columns)
        load.build_stage(tgt, progress, manifest, types)
        extra_values = load.count_extra_values(tgt, manifest, types)
        phase("identity")
        commit()
        seconds["stage"] = time.perf_counter() - t0

        current = "identity"
        t0 = time.perf_counter()
        quarantined, requarantined = apply.quarantine_lead_rows(tgt, run_id)
        plan = identity.build_plan(tgt, opts.batch_size, progress)
        phase("leads")
        commit()
        seconds["identity"] = time.perf_counter() - t0

        current = "leads"
        t0 = time.perf_counter()
        changes = {
            "leads_created": 0,
            "leads_filled": 0,
            "rows_mapped": 0,
            "journey_rows": 0,
            "quarantined": quarantined,
            "notifications": 0,
            "notifications_updated": 0,
            "quarantine_released": 0,
            "quarantine_reasons_updated": requarantined,
            "persons_rejoined": 0,
        }
        jobs = 1 if opts.dry_run else max(1, min(opts.jobs, plan.batches))
        for r in _apply_batches(tgt, opts.target_url, run_id, plan.batches, jobs, commit, not opts.dry_run):
            changes["leads_created"] += r.leads_created
            changes["leads_filled"] += r.leads_filled
            changes["rows_mapped"] += r.rows
            changes["journey_rows"] += r.journey_rows
            changes["quarantined"] += r.quarantined
            changes["quarantine_reasons_updated"] += r.quarantine_updated
            changes["persons_rejoined"] += r.leads_joined
            progress("leads", r.rows, plan.rows)
        if plan.batches == 0:
            progress("leads", 0, 0)
        seconds["leads"] = time.perf_counter() - t0

        current = "journey"
        t0 = time.perf_counter()
        # one transaction; retried like a batch when it loses a deadlock to a live writer (its
        # journey import locks every live lead it writes rows for)
        halfway: list[bool] = []  # the progress bar's first half is reported once

        def journey_halfway(name: str, advance: int, total: int | None) -> None:
            if not halfway:
                halfway.append(True)
                progress(name, advance, total)

        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                phase("journey")
                journey = _journey_phase(tgt, run_id, journey_halfway)
                phase("verify")
                commit()
                break
            except RETRYABLE:
                if opts.dry_run or attempt == BATCH_ATTEMPTS:
                    raise
                tgt.rollback()
                time.sleep(random.uniform(0.05, 0.25) * attempt)
        for key, n in journey.items():
            changes[key] += n
        journey_halfway("journey", 1, 2)
        progress("journey", 1, 2)
        seconds["journey"] = time.perf_counter() - t0

        current = "verify"
        t0 = time.perf_counter()
        report.changes = changes
        verify(tgt, report)
        if json_columns:
            report.data_quality["json_values_kept_as_text"] = json_kept
        report.extra_columns = extra_values
        seconds["verify"] = time.perf_counter() - t0
        report.seconds = {k: round(v, 3) for k, v in seconds.items()}
        progress("verify", 1, 1)
        if opts.dry_run:
            tgt.rollback()
        else:
            # the report says OK only once it is durable: a synchronous commit flushes the WAL
            # up to it, every batch's asynchronous commit included (found by review)
            tgt.execute("set local synchronous_commit = on")
            tgt.execute(
                "update private.consolidation_runs set status = %s, phase = null, changes = %s, report = %s,"
                " finished_at = now() where id = %s",
                ("completed" if report.ok else "failed", Jsonb(changes), Jsonb(report.to_json()), run_id),
            )
            tgt.commit()
        return report
    except Exception as exc:
        if run_id is not None and not opts.dry_run:
            _mark_failed(tgt, run_id, exc, phase=current)
        if isinstance(exc, psycopg.Error):  # a lost connection, a full disk, a revoked right, ...
            written = run_id is not None and not opts.dry_run
            message = _database_failure(exc, current, src, tgt, written)
            if opts.dry_run and isinstance(exc, RETRYABLE):
                # its one transaction cannot apply a batch again alone (the error said nothing
                # of what to do, found by review)
                message += "; a dry run does not retry a conflict with a live writer: run it again"
            raise ConsolidationError(message, kind="database_failure") from exc
        raise
    except KeyboardInterrupt:
        if run_id is not None and not opts.dry_run:
            _mark_failed(
                tgt,
                run_id,
                "interrupted (Ctrl-C); run the same command again to resume",
                "interrupted",
                phase=current,
            )
        raise
    finally:
        src.close()
        tgt.close()


def _database_failure(
    exc: psycopg.Error, phase: str, src: psycopg.Connection, tgt: psycopg.Connection, written: bool
) -> str:
    """One line for a database error in the middle of a run: where, what, and what now."""
    lost = exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P"))  # connection failures
    side = None
    if src.broken:
        side = "the source (Landing)"
    elif tgt.broken or (
        lost and isinstance(exc, psycopg.OperationalError) and phase not in ("preflight", "backup")
    ):
        side = "the target (Traffic)"  # after the backup only target connections are in use
    what = f"lost the connection to {side}: " if side else ""
    then = (
        "what was committed stays; once the cause is fixed, run the same command again to resume"
        if written
        else "nothing was written to the target"
    )
    return f"{phase} failed: {what}{describe_error(exc)}; {then}"


def _mark_failed(
    conn: psycopg.Connection, run_id: int, exc: Exception | str, status: str = "failed", *, phase: str
) -> None:
    """The ledger says the run failed (or was interrupted), in which phase and why (what it
    committed stays; a re-run goes on from there). The phase is written here too: the
    update that began it may have rolled back with the phase's work, and a run that failed in
    the journey phase said 'leads' (found by review). Best effort: the connection itself may
    be what failed."""
    error = describe_error(exc) if isinstance(exc, psycopg.Error) else str(exc)
    try:
        conn.rollback()
        conn.execute(
            "update private.consolidation_runs set status = %s, phase = %s, finished_at = now(),"
            " report = jsonb_build_object('error', %s::text) where id = %s and status = 'running'",
            (status, phase, error, run_id),
        )
        conn.commit()
    except psycopg.Error:
        pass
