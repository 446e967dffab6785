"""``onai-db worker``: claim outbox jobs, call the providers, record the outcome.

N threads (``--concurrency``), each with its own connection, claim one job at a time
(`for update skip locked` + a lease), run its handler, and complete or fail it. SIGTERM
or SIGINT stops claiming: jobs in flight finish (bounded by the HTTP timeout) and any
job claimed but not started is released. ``--once`` drains the due jobs and exits.
Without pg_cron the worker also runs lease recovery, log retention and the nightly fold of
the lead stats (``private.fold_lead_daily_stats``) itself.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import httpx
import psycopg

from .connection import CONNECTION_LOST, checked_url_option, conninfo, describe_url, first_line
from .errors import ConfigError, DatabaseUnreachableError, OnaiDbError, StackError
from .integration_tokens import has_kept_tokens, refreshes_in_flight, store_kept_tokens
from .outbox import KINDS, Job, Outbox, connect, use_service_role
from .outbox_handlers import HandlerContext, Handlers, ProviderConfig, require_kinds
from .providers.base import Delivery, PermanentError, ProviderError, RateLimitedError
from .redact import redact
from .settings import Settings


def _number(
    settings: Settings, name: str, default: float, low: float, high: float, low_open: bool = False
) -> float:
    """A numeric setting within [low, high] (``low_open``: above low), checked at start-up so
    a bad value stops the worker before it claims a job, with the setting's name."""
    value = settings.get(name)
    try:
        number = float(value) if value is not None else default
    except ValueError:
        number = math.nan
    too_low = number <= low if low_open else number < low
    if not math.isfinite(number) or too_low or number > high:
        bound = f"above {low:g}" if low_open else f"at least {low:g}"
        raise ConfigError(f"{name} must be a number {bound} and at most {high:g}, got {value!r}")
    return number


def checked_kinds(services: Sequence[str]) -> list[str]:
    """The requested kinds, deduplicated; an unknown one is a ConfigError naming the valid ones."""
    unknown = sorted(set(services) - set(KINDS))
    if unknown:
        raise ConfigError(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    return list(dict.fromkeys(services))


@dataclass
class WorkerConfig:
    db_url: str
    kinds: list[str]
    concurrency: int = 2
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    backoff_base_seconds: float = 10.0
    backoff_cap_seconds: float = 3600.0
    http_timeout_seconds: float = 10.0
    retention_days: int = 30
    housekeeping_seconds: float = 30.0
    dry_run: bool = False
    providers: ProviderConfig = field(default_factory=ProviderConfig)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        services: Sequence[str] | None = None,
        concurrency: int | None = None,
        dry_run: bool = False,
        db_url: str | None = None,
    ) -> WorkerConfig:
        providers = ProviderConfig.from_settings(settings)
        if dry_run:
            providers = providers.for_dry_run()
        if services:
            kinds = checked_kinds(services)
        else:
            kinds = list(KINDS) if dry_run else providers.configured_kinds()
        if not kinds:
            raise ConfigError(
                "no provider is configured: set RESEND_API_KEY, MOBIZON_API_KEY, TELEGRAM_*_BOT_TOKEN or AMOCRM_*"
            )
        require_kinds(providers, kinds, dry_run)
        url = db_url or database_url(settings)
        if dry_run and not _is_local(url) and settings.get("OUTBOX_ALLOW_DRY_RUN") != "1":
            raise ConfigError(
                "--dry-run marks jobs done without sending them; it runs only against a local database "
                "(set OUTBOX_ALLOW_DRY_RUN=1 to override)"
            )
        backoff_base = _number(settings, "OUTBOX_BACKOFF_BASE_SECONDS", 10.0, 0, 86400)
        backoff_cap = _number(settings, "OUTBOX_BACKOFF_CAP_SECONDS", 3600.0, 0, 30 * 86400)
        if backoff_cap < backoff_base:
            raise ConfigError(
                f"OUTBOX_BACKOFF_CAP_SECONDS ({backoff_cap:g}) is below OUTBOX_BACKOFF_BASE_SECONDS"
                f" ({backoff_base:g}); the cap is the longest wait between two attempts"
            )
        threads = (
            concurrency if concurrency is not None else _number(settings, "OUTBOX_CONCURRENCY", 2, 1, 64)
        )
        if threads != int(threads) or not 1 <= threads <= 64:
            raise ConfigError(
                f"--concurrency / OUTBOX_CONCURRENCY must be a whole number from 1 to 64, got {threads:g}"
            )
        return cls(
            db_url=url,
            kinds=kinds,
            concurrency=int(threads),
            lease_seconds=_number(settings, "OUTBOX_LEASE_SECONDS", 60.0, 0.5, 86400),
            poll_seconds=_number(settings, "OUTBOX_POLL_SECONDS", 1.0, 0, 3600, low_open=True),
            backoff_base_seconds=backoff_base,
            backoff_cap_seconds=backoff_cap,
            http_timeout_seconds=_number(
                settings, "OUTBOX_HTTP_TIMEOUT_SECONDS", 10.0, 0, 120, low_open=True
            ),
            retention_days=int(_number(settings, "OUTBOX_RETENTION_DAYS", 30, 1, 3650)),
            housekeeping_seconds=_number(
                settings, "OUTBOX_HOUSEKEEPING_SECONDS", 30.0, 0, 86400, low_open=True
            ),
            dry_run=dry_run,
            providers=providers,
        )


def _is_local(url: str) -> bool:
    """Every host the connection may reach is loopback or a socket: libpq connects to
    ``hostaddr`` when it is given (whatever ``host`` says), and PGHOST / PGHOSTADDR fill what
    the URL leaves out."""
    params = conninfo(url)
    hosts = str(params.get("host") or os.environ.get("PGHOST") or "localhost").split(",")
    addrs = str(params.get("hostaddr") or os.environ.get("PGHOSTADDR") or "").split(",")
    return all(h in ("localhost", "127.0.0.1", "::1") or h.startswith("/") for h in hosts) and all(
        a in ("", "127.0.0.1", "::1") for a in addrs
    )


def database_url(settings: Settings) -> str:
    """``ONAI_DB_URL`` (or an alias), else the local stack's database."""
    return database_choice(settings)[0]


URL_HELP = "The Traffic database's Postgres URL (default ONAI_DB_URL or its aliases, else the local stack)."


def database_choice(settings: Settings, option: str | None = None) -> tuple[str, str]:
    """``database_url`` and where it came from ("TRAFFIC_DB_URL in .env", "the local stack"),
    for the commands that name the database they work on; ``option`` is their ``--url``,
    which beats every setting."""
    if option is not None:
        return checked_url_option(option, "--url", "the Traffic database's Postgres URL"), "--url"
    url = settings.get("ONAI_DB_URL")
    if url:
        return url, settings.origin("ONAI_DB_URL") or "ONAI_DB_URL"
    from .local import DEFAULT_DB, LocalStack

    try:
        return LocalStack(settings, echo=lambda _m: None).database_url(DEFAULT_DB), "the local stack"
    except StackError:
        # on a server the missing piece is the setting, not a local cluster
        raise ConfigError(
            "no database: set ONAI_DB_URL (or TRAFFIC_DB_URL, DATABASE_URL, SUPABASE_DB_URL) to the"
            " Traffic database's URL, or start the local stack with `onai-db local up`"
        ) from None


@dataclass
class WorkerReport:
    """What one run did."""

    claimed: int = 0
    succeeded: int = 0
    skipped: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0  # lease lost before finishing (another worker took over)
    released: int = 0
    recovered: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        return (
            f"claimed {self.claimed}: {self.succeeded} sent, {self.skipped} skipped/handled, "
            f"{self.retried} to retry, {self.dead} dead, {self.lost} lease lost, {self.released} released"
        )


# the database went away (restart, failover, a terminated backend, a network cut), or the
# server met is a read-only one (a failover under way, found by review: the worker died and
# its kept token pair with it): a long-running worker reconnects; a statement the server
# refused otherwise is not one of these
_DB_GONE = (*CONNECTION_LOST, DatabaseUnreachableError, psycopg.errors.ReadOnlySqlTransaction)
_RECONNECT_CAP_SECONDS = 30.0
_PROGRESS_SECONDS = 60.0
_AMOCRM_BATCH, _AMOCRM_BATCHES = 1000, 10  # at most 10,000 sync jobs queued per period
_APPLICATION = "onai-db worker"  # pg_stat_activity's application_name of its connections
# the pg_cron jobs the migrations schedule (20261121120600, 20261122120400)
CRON_RECOVER = "onai-outbox-recover-leases"
CRON_RETENTION = "onai-integration-retention"
# the worker's daily tasks, as integration_logs actions of service 'outbox'
_DAILY_RETENTION = "retention"
_DAILY_FOLD = "fold_lead_stats"
_DAILY_AMOCRM_SWEEP = "amocrm_lead_sweep"
CRON_FOLD = "onai-lead-stats-fold"


def _open(url: str, *, as_service_role: bool = True) -> psycopg.Connection:
    """A worker connection: named in pg_stat_activity, with TCP keepalive."""
    return connect(url, as_service_role=as_service_role, application_name=_APPLICATION, keepalive=True)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _in_batches(sweep: Callable[[int], int]) -> int:
    """Run an AmoCRM enqueue sweep in batches until one comes back short; how many it queued."""
    queued = 0
    for _ in range(_AMOCRM_BATCHES):
        batch = sweep(_AMOCRM_BATCH)
        queued += batch
        if batch < _AMOCRM_BATCH:
            break
    return queued


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        transport: httpx.BaseTransport | None = None,
        echo: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.echo = echo
        self.stop = threading.Event()
        self.report = WorkerReport()
        self._lock = threading.Lock()
        self._errors: list[Exception] = []
        self._rate_limited_ids: set[int] = set()  # --once: jobs snoozed by a rate limit in this run
        self._secrets = config.providers.secrets()
        self._leases = _LeaseKeeper(config.db_url, config.lease_seconds, echo)
        # host:pid alone repeats across containers (each worker is pid 1) and across Worker
        # objects of one process; leases and token refreshes tell workers apart by this id
        self.id_prefix = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # -- running ------------------------------------------------------------------------

    def run(self, once: bool = False) -> WorkerReport:
        self._once = once
        self._stopping_until = None  # a Worker may run again
        restore = self._install_signals()
        threads: list[threading.Thread] = []
        try:
            try:
                self._housekeeping(force=True)
            except psycopg.errors.QueryCanceled:
                if not self.stop.is_set():
                    raise
                # a stop during start-up housekeeping (waiting on a lock): nothing was claimed
                # (found by review: the signal was ignored until the lock came free, and the
                # worker then said "started")
                self.echo("stopped during start-up housekeeping; no job was claimed")
                return self.report
            self._last_progress = self._last_kept_store = time.monotonic()
            cfg = self.config
            self.echo(
                f"worker {self.id_prefix} started: {', '.join(cfg.kinds)}; {cfg.concurrency} thread(s); "
                f"database {describe_url(cfg.db_url)}" + ("; dry run, nothing is sent" if cfg.dry_run else "")
            )
            threads = [
                threading.Thread(target=self._guarded_loop, args=(f"{self.id_prefix}:{i}", once), daemon=True)
                for i in range(self.config.concurrency)
            ]
            with self._leases:
                for t in threads:
                    t.start()
                while any(t.is_alive() for t in threads):
                    self._wait_round(threads, min(self.config.housekeeping_seconds, 1.0))
                    if self.stop.is_set():
                        # at once, not after the busy threads end: a stop's grace period may end
                        # first (found by review: stored 9 s after SIGTERM, behind a slow call)
                        if has_kept_tokens():
                            self._store_kept_tokens_on_the_way_out(self.id_prefix)
                        # then the threads are waited for, up to the stop's deadline, with
                        # their leases still kept (found by review: this loop went on while a
                        # provider trickled its answer, _wait_round returning at once: a core
                        # at 100% and no end)
                        deadline = self._stop_deadline()
                        for t in threads:
                            t.join(timeout=max(0.0, deadline - time.monotonic()))
                        break
                    if not once:
                        self._housekeeping_or_warn()
                        self._progress()
            if self._errors:
                raise self._errors[0]
            return self.report
        finally:
            self._finish(threads)
            restore()

    def _wait_round(self, threads: list[threading.Thread], seconds: float) -> None:
        """Up to ``seconds``, until the threads end or a stop comes: a stop is acted on at once
        (found by review: a join of each busy thread in turn took up to a second a thread, so
        with 32 threads a kept pair was stored 32 s after SIGTERM, past a 30 s grace period)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and any(t.is_alive() for t in threads):
            if self.stop.wait(0.05):
                return

    def _finish(self, threads: list[threading.Thread]) -> None:
        """However the run ends (also when housekeeping raised; found by review: the serving
        threads were daemons that died with the process, their kept token pair with them):
        stop the threads, let them record what they did, and store the kept pairs last. Kept
        pairs are stored first too, as a stop's grace period may end during the joins (found by
        review), and a thread still busy at the end is named: its work may be done again."""
        self.stop.set()
        if has_kept_tokens():
            self._store_kept_tokens_on_the_way_out(self.id_prefix)
        deadline = self._stop_deadline()
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        # a token refresh waiting for the provider's answer: once the provider has rotated, that
        # answer's pair is the only valid one, so wait for it as long as the refresh's lease
        # (found by review: a run ended by an error lost it without a word)
        refresh_deadline = time.monotonic() + 4 * self.config.http_timeout_seconds + 5.0
        while refreshes_in_flight() and time.monotonic() < refresh_deadline:
            for t in threads:
                t.join(timeout=0.2)
        if refreshes_in_flight():
            self.echo(
                f"{refreshes_in_flight()} token refresh(es) still wait for the provider's answer as the worker"
                " stops: if the provider rotated the pair, it is lost with this process; re-authorize when the"
                " next refresh is refused"
            )
        busy = sum(t.is_alive() for t in threads)
        if busy:
            self.echo(
                f"{busy} thread(s) still busy as the worker stops (a provider call or a token store);"
                " a job they hold is retried after its lease, a refreshed token they hold is stored below"
                " if it can be"
            )
        self._store_kept_tokens_on_the_way_out(self.id_prefix, last=True)

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def on_signal(signum: int, _frame: object) -> None:
            self.echo(f"signal {signum}: finishing jobs in flight, then exiting")
            self.stop.set()
            # this thread may wait in housekeeping for a lock: its statement is cancelled
            # (housekeeping is safe to cut short: each step is its own transaction and
            # runs again the next period)
            conn = self._housekeeping_conn
            if conn is not None:
                try:
                    conn.cancel_safe(timeout=5.0)
                except Exception as exc:  # raised here, it would surface anywhere in the main thread
                    self.echo(f"housekeeping could not be cancelled: {first_line(exc)}")

        for s in previous:
            signal.signal(s, on_signal)

        def restore() -> None:
            for s, handler in previous.items():
                signal.signal(s, handler)

        return restore

    _housekeeping_conn: psycopg.Connection | None = None
    _stopping_until: float | None = None

    def _stop_deadline(self) -> float:
        """Until when a stopping worker waits for its busy threads: the HTTP timeout + 10 s
        from the first time it is asked (a job in flight finishes within it)."""
        if self._stopping_until is None:
            self._stopping_until = time.monotonic() + self.config.http_timeout_seconds + 10.0
        return self._stopping_until

    def _rate_limited_in_this_run(self, jobs: Sequence[Job]) -> bool:
        """Whether one of ``jobs`` met a rate limit before in this run."""
        with self._lock:
            return any(j.id in self._rate_limited_ids for j in jobs)

    @contextlib.contextmanager
    def _cancellable(self, conn: psycopg.Connection) -> Iterator[None]:
        """While the block runs, a stop signal cancels ``conn``'s statement."""
        self._housekeeping_conn = conn
        try:
            yield
        finally:
            self._housekeeping_conn = None

    _last_housekeeping = 0.0
    _last_progress = 0.0
    _last_kept_store = 0.0
    _once = False
    _progress_shown = ""

    def _progress(self) -> None:
        """A line with the run's totals every minute in which something happened, so the log
        of a long-running worker shows it is alive and what it did."""
        now = time.monotonic()
        if now - self._last_progress < _PROGRESS_SECONDS:
            return
        self._last_progress = now
        with self._lock:
            summary = self.report.summary()
        if summary != self._progress_shown:
            self._progress_shown = summary
            self.echo(f"so far: {summary}")

    def _housekeeping_or_warn(self) -> None:
        """Housekeeping of a running worker: a database that went away is a warning (the next
        period tries again), not the end of the worker."""
        try:
            self._housekeeping()
        except psycopg.errors.QueryCanceled as exc:  # an OperationalError: before _DB_GONE
            if not self.stop.is_set():
                raise
            self.echo(f"housekeeping cancelled by the stop: {first_line(exc)}")
        except _DB_GONE as exc:
            self.echo(f"housekeeping skipped, database unreachable or read-only: {first_line(exc)}")
        now = time.monotonic()
        if has_kept_tokens() and now - self._last_kept_store >= self.config.housekeeping_seconds:
            # a pair whose store met an error on a connection still up: stored every period, not
            # only at a reconnect (found by review)
            self._last_kept_store = now
            self._store_kept_tokens(self.id_prefix)

    def _housekeeping(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_housekeeping < self.config.housekeeping_seconds:
            return
        self._last_housekeeping = now
        if self.stop.is_set():
            return
        with _open(self.config.db_url, as_service_role=False) as conn, self._cancellable(conn):
            queue = Outbox(conn)
            # what pg_cron runs (scheduled by the migrations when pg_cron was there at push
            # time) is left to it; each job it lacks is done here (pg_cron enabled after the
            # push schedules nothing: the worker stopped all three then, found by review).
            # Read as the login role: on hosted Supabase ``postgres`` may read ``cron.job``,
            # ``service_role`` may not; unreadable means none (each job is safe to run twice).
            cron = queue.scheduled_cron_jobs()
            use_service_role(conn)
            if force:
                self._warn_of_cron_retention(cron.get(CRON_RETENTION))
            # the daily tasks run once a day across workers and runs: each success is an
            # integration_logs row ('outbox', action), so a cron-run --once does them once a
            # day too (found by review: it pruned and folded at every run, and never made the
            # AmoCRM full sweep)
            due = queue.daily_tasks_due((_DAILY_AMOCRM_SWEEP, _DAILY_RETENTION, _DAILY_FOLD))
            if "amocrm" in self.config.kinds:
                # the full sweep reads every imported lead (seconds on a big table)
                self._queue_amocrm_syncs(queue, full=_DAILY_AMOCRM_SWEEP in due)
            if CRON_RECOVER not in cron:
                recovered = queue.recover_expired()
                with self._lock:
                    self.report.recovered += recovered
            if CRON_RETENTION not in cron and _DAILY_RETENTION in due:
                started = time.monotonic()
                queue.prune(self.config.retention_days)
                queue.record_daily_task(_DAILY_RETENTION, _ms_since(started))
            if CRON_FOLD not in cron and _DAILY_FOLD in due:
                conn.execute("reset role")
                started = time.monotonic()
                if self._fold_lead_stats(conn):
                    queue.record_daily_task(_DAILY_FOLD, _ms_since(started))

    def _warn_of_cron_retention(self, command: str | None) -> None:
        """pg_cron's retention job keeps what its command says (30 days as the migration
        scheduled it), and the worker then prunes nothing itself: a different
        OUTBOX_RETENTION_DAYS did nothing without a word (found by review)."""
        if command is None:
            return
        kept = re.search(r"prune_integration_history\s*\(\s*(?:p_keep_days\s*=>\s*)?(\d+)", command)
        if kept and int(kept.group(1)) == self.config.retention_days:
            return
        days = kept.group(1) if kept else "?"
        self.echo(
            f"warning: pg_cron job {CRON_RETENTION} keeps {days} day(s) of history, not OUTBOX_RETENTION_DAYS="
            f"{self.config.retention_days}; to change it, as postgres: select cron.schedule('{CRON_RETENTION}',"
            f" '17 3 * * *', 'select * from public.prune_integration_history({self.config.retention_days})');"
        )

    def _queue_amocrm_syncs(self, queue: Outbox, full: bool) -> None:
        """A worker that serves AmoCRM queues a sync job for each new live lead not yet in
        AmoCRM, every housekeeping period (enqueue_amocrm_new_lead_syncs, index-backed):
        intake (a PostgREST call of find_or_create_unified_lead) queues none, and nothing
        else did, so new leads never reached AmoCRM unless someone ran
        enqueue_amocrm_lead_sync (found by review). Once a day, ``full``: also leads imported
        from Landing that came back through Traffic (enqueue_amocrm_lead_sync, which reads
        every imported lead; recorded as the daily task, so ``--once`` runs make it too).
        Imported leads that did not come back wait for the operator's decision (README,
        runbook)."""
        queued = _in_batches(queue.enqueue_amocrm_new_lead_syncs)
        if full:
            started = time.monotonic()
            queued += _in_batches(queue.enqueue_amocrm_lead_sync)
            queue.record_daily_task(_DAILY_AMOCRM_SWEEP, _ms_since(started))
        if queued:
            self.echo(f"queued {queued} AmoCRM sync job(s) for new leads")

    def _fold_lead_stats(self, conn: psycopg.Connection) -> bool:
        """On a connection acting as the login role (the function is the database owner's,
        not the API's); a login that may not run it gets a warning, the worker carries on.
        Whether it folded."""
        try:
            fold_lead_stats(conn)
        except psycopg.errors.InsufficientPrivilege as exc:
            self.echo(
                f"lead stats not folded: {exc.diag.message_primary} (connect as postgres, or use pg_cron)"
            )
            return False
        return True

    def _guarded_loop(self, worker_id: str, once: bool) -> None:
        """A thread that dies (database gone, a bug) stops the others and fails the run."""
        try:
            self._loop(worker_id, once)
        except Exception as exc:
            with self._lock:
                self._errors.append(exc)
            self.stop.set()

    def _loop(self, worker_id: str, once: bool) -> None:
        """Serve jobs; a lost database connection is reconnected with a growing pause (1 s to
        30 s), and the outcome of a job whose provider call was made before it is recorded
        on the new connection (its lease is kept meanwhile), so the call is not made again.
        With ``once`` the loss ends the run (cron runs it again), after one try to record
        such an outcome (without it the next run made the call again; found by review)."""
        pause = 1.0
        unrecorded: list[Callable[[Outbox], None]] = []
        lost = False
        try:
            while not self.stop.is_set():
                connected = time.monotonic()
                try:
                    self._serve(worker_id, once, unrecorded, reconnected=lost)
                    return
                except _DB_GONE as exc:
                    if once:
                        raise
                    lost = True
                    if time.monotonic() - connected > 2 * _RECONNECT_CAP_SECONDS:
                        pause = 1.0
                    self.echo(
                        f"{worker_id}: database connection lost or read-only ({first_line(exc)});"
                        f" reconnecting in {pause:g} s"
                    )
                    self.stop.wait(pause)
                    pause = min(2 * pause, _RECONNECT_CAP_SECONDS)
        finally:
            self._record_on_the_way_out(worker_id, unrecorded)

    def _record_on_the_way_out(self, worker_id: str, unrecorded: list[Callable[[Outbox], None]]) -> None:
        """Outcomes not yet recorded when the thread ends (stopped while the database was
        away, or ``--once`` ending on a loss): one last try each, on a new connection; so for
        a refreshed AmoCRM token pair the process still keeps (else it died with it)."""
        for record in unrecorded:
            try:
                with _open(self.config.db_url) as conn:
                    record(Outbox(conn))
            except _DB_GONE as exc:
                self.echo(
                    f"{worker_id}: an outcome could not be recorded ({first_line(exc)}); its lease will expire"
                )
        self._store_kept_tokens_on_the_way_out(worker_id)

    def _store_kept_tokens(self, worker_id: str, last: bool = False) -> None:
        """Store the refreshed token pairs this process keeps (integration_tokens); ``last``
        when the process ends."""
        for said in store_kept_tokens(lambda: _open(self.config.db_url), worker_id, last=last):
            self.echo(f"{worker_id}: {said}")

    def _store_kept_tokens_on_the_way_out(self, worker_id: str, last: bool = False) -> None:
        """:meth:`_store_kept_tokens` for a thread or a run that ends: a failure is only logged,
        never hiding the error it ends with."""
        try:
            self._store_kept_tokens(worker_id, last)
        except Exception as exc:
            self.echo(f"{worker_id}: kept tokens could not be stored on the way out: {first_line(exc)}")

    def _serve(
        self,
        worker_id: str,
        once: bool,
        unrecorded: list[Callable[[Outbox], None]],
        reconnected: bool = False,
    ) -> None:
        cfg = self.config
        timeout = httpx.Timeout(cfg.http_timeout_seconds)
        with (
            _open(cfg.db_url) as conn,
            httpx.Client(timeout=timeout, transport=self.transport) as http,
        ):
            queue = Outbox(conn)
            if reconnected:
                self.echo(f"{worker_id}: database connection re-made")
            while unrecorded:
                unrecorded[0](queue)
                unrecorded.pop(0)
            if reconnected:  # a pair kept while the database was away: stored before anyone spends
                self._store_kept_tokens(worker_id)  # the refresh token it rotated away
            context = HandlerContext(
                conn,
                worker_id,
                cfg.http_timeout_seconds,
                reconnect=lambda: _open(cfg.db_url),
            )
            handlers = Handlers(cfg.providers, http, context, dry_run=cfg.dry_run)
            while not self.stop.is_set():
                jobs = queue.claim(worker_id, 1, cfg.lease_seconds, cfg.kinds)
                if once and jobs and self._rate_limited_in_this_run(jobs):
                    # a rate-limited job is snoozed without counting an attempt: back already
                    # (Retry-After: 1), it waits for the next --once run (found by review:
                    # Resend answering 429 kept a cron-run --once claiming it for ever)
                    released = queue.release(worker_id, [j.id for j in jobs])
                    with self._lock:
                        self.report.released += released
                    return
                if not jobs:
                    if once:
                        return
                    self.stop.wait(cfg.poll_seconds)
                    continue
                for n, job in enumerate(jobs):
                    if self.stop.is_set():
                        released = queue.release(worker_id, [j.id for j in jobs[n:]])
                        with self._lock:
                            self.report.released += released
                        return
                    record = self._run_job(handlers, worker_id, job)
                    try:
                        record(queue)
                    except _DB_GONE:
                        unrecorded.append(record)
                        raise

    def _run_job(self, handlers: Handlers, worker_id: str, job: Job) -> Callable[[Outbox], None]:
        """Run the job's handler; returns how to record its outcome. The lease keeper keeps
        the job's lease until the outcome is recorded."""
        with self._lock:
            self.report.claimed += 1
            self.report.by_kind[job.kind] += 1
        started = time.monotonic()
        outcome: Delivery | None = None
        error: ProviderError | None = None
        self._leases.add(job.id, worker_id)
        try:
            outcome = handlers.handle(job)
        except ProviderError as exc:
            error = exc
        except _DB_GONE as exc:
            error = ProviderError(
                f"database connection lost (or read-only) while handling the job: {first_line(exc)}"
            )
        except Exception as exc:  # malformed payload: dead at once; anything else: retried, then dead
            error = (
                PermanentError(f"{type(exc).__name__} while handling the job")
                if isinstance(exc, (KeyError, TypeError, ValueError))
                else ProviderError(f"unexpected {type(exc).__name__}")
            )
        elapsed_ms = int((time.monotonic() - started) * 1000)

        def record(queue: Outbox) -> None:
            if outcome is not None:
                self._complete(queue, worker_id, job, outcome, elapsed_ms)
            else:
                assert error is not None
                self._fail(queue, worker_id, job, error, elapsed_ms)
            self._leases.remove(job.id)

        return record

    def _complete(self, queue: Outbox, worker_id: str, job: Job, outcome: Delivery, elapsed_ms: int) -> None:
        status = "failed" if outcome.failed else ("skipped" if outcome.skipped else "success")
        note = redact(outcome.note, self._secrets) if outcome.note else None
        done = queue.complete(worker_id, [job.id], [elapsed_ms], [outcome.provider_ref], status, note)
        with self._lock:
            if not done:
                self.report.lost += 1
            elif status == "success":
                self.report.succeeded += 1
            else:
                self.report.skipped += 1

    def _fail(self, queue: Outbox, worker_id: str, job: Job, error: ProviderError, elapsed_ms: int) -> None:
        cfg = self.config
        message = redact(str(error), self._secrets)
        rate_limited = isinstance(error, RateLimitedError)
        new_status = queue.fail(
            job.id,
            worker_id,
            message,
            duration_ms=elapsed_ms,
            retry_in_seconds=error.retry_after if isinstance(error, RateLimitedError) else None,
            permanent=not error.retry,
            count_attempt=not rate_limited,
            backoff_base_seconds=cfg.backoff_base_seconds,
            backoff_cap_seconds=cfg.backoff_cap_seconds,
        )
        with self._lock:
            if rate_limited and self._once:  # only --once asks (a long run would only grow it)
                self._rate_limited_ids.add(job.id)
            if new_status is None:
                self.report.lost += 1
            elif new_status == "dead":
                self.report.dead += 1
            else:
                self.report.retried += 1
        if new_status == "dead":
            self.echo(f"job {job.id} ({job.kind}) is dead: {message}")


class _LeaseKeeper:
    """Extends the lease of every job in flight every third of the lease, from one thread with
    a connection of its own, so a slow but alive handler (several AmoCRM requests, a token
    refresh, a write waiting on a row lock held by a merge) keeps its job. The handler's own
    connection cannot do it: a write waiting on a lock holds that connection, and the lease
    ran out under it, so a second worker ran the same AmoCRM sync (found by review)."""

    def __init__(self, db_url: str, lease_seconds: float, echo: Callable[[str], None]) -> None:
        self.db_url, self.lease, self.echo = db_url, lease_seconds, echo
        self._jobs: dict[int, str] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._conn: psycopg.Connection | None = None
        self._thread: threading.Thread | None = None

    def add(self, job_id: int, worker: str) -> None:
        with self._lock:
            self._jobs[job_id] = worker

    def remove(self, job_id: int) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def _beat(self) -> None:
        while not self._done.wait(self.lease / 3):
            with self._lock:
                jobs = dict(self._jobs)
            if jobs:
                self._extend(jobs)

    def _extend(self, jobs: dict[int, str]) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = _open(self.db_url)
                # one job's row held by another session (an operator's select ... for update)
                # must not hold up every other job's lease: they ran out, and their messages
                # were sent again (found by review)
                self._conn.execute("set lock_timeout = '1s'")
            queue = Outbox(self._conn)
            for job_id, worker in jobs.items():
                try:
                    extended = queue.extend(worker, [job_id], self.lease)
                except psycopg.errors.LockNotAvailable:
                    self.echo(f"job {job_id}: lease not extended, its row is locked by another session")
                    continue
                if extended == 0:
                    with self._lock:
                        running = job_id in self._jobs
                    if running:
                        self.echo(f"job {job_id}: lease lost while its handler ran (recovered or taken over)")
        except (psycopg.Error, OnaiDbError) as exc:  # the database went away: try again next beat
            self.echo(
                f"lease heartbeat failed, trying again: {str(exc).splitlines()[0] if str(exc) else exc}"
            )
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    def __enter__(self) -> _LeaseKeeper:
        """Starts the keeper's thread (again for each run of the worker)."""
        self._done.clear()
        self._thread = threading.Thread(target=self._beat, name="lease-keeper", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def run_worker(
    settings: Settings | None = None,
    *,
    once: bool = False,
    services: Sequence[str] | None = None,
    concurrency: int | None = None,
    dry_run: bool = False,
    db_url: str | None = None,
    echo: Callable[[str], None] = lambda _m: None,
) -> WorkerReport:
    """The library behind ``onai-db worker``; ``dry_run`` answers every call with the
    provider's documented success shape and sends nothing."""
    settings = settings or Settings.load()
    config = WorkerConfig.from_settings(settings, services, concurrency, dry_run, db_url)
    transport = None
    if dry_run:
        from .providers.dryrun import transport as dry_transport

        transport = dry_transport()
    return Worker(config, transport, echo).run(once=once)


def fold_lead_stats(conn: psycopg.Connection) -> int:
    """Fold the shards of past days in traffic_lead_daily_stats (what pg_cron's
    onai-lead-stats-fold does nightly); returns the number of rows written."""
    row = conn.execute("select private.fold_lead_daily_stats()").fetchone()
    return int(row[0]) if row and row[0] is not None else 0
