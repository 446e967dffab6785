"""OAuth tokens in ``public.integration_tokens`` and the single-flight refresh.

A refresh token can be used once (AmoCRM rotates it on every refresh), so exactly one
worker refreshes: :meth:`TokenStore.refresh` asks the database for the refresh lease;
the winner calls the provider and stores the new pair, everyone else waits until the
stored ``token_version`` moves and then uses the new access token.

A pair the provider issued is kept in the process from the moment it arrives (found by
review: it was kept only once its first store had failed, which a cut connection delays for up
to 30 s, and meanwhile another thread of the process, the lease lapsed, sent the rotated-away
refresh token) and forgotten once stored. One the database could not store (the connection was
lost, or a new connection met a server that refuses writes) is stored at once through new
connections (four tries, 7 s of pauses between them); failing that it stays kept and stored by its next refresh (also when another thread's refresh finds the
database's pair newer than its own but still the one the kept pair replaced), when the
worker's connection is re-made, every housekeeping period, and when the worker stops,
instead of calling the provider with a refresh token it has already rotated away (the
integration needed a new OAuth consent). A kept pair is
stored only while the database still holds the refresh token it replaced: once another pair
is in (another process refreshed, an operator re-authorized, or the lost store did commit),
it is stale and dropped, never written over the newer one. What cannot be covered: another
process whose lease begins after this one's lapsed, while the database is away for this one
only, sends the rotated-away token (docs/outbox.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import psycopg

from .connection import first_line
from .errors import OnaiDbError
from .providers.base import ProviderError, TransientError
from .redact import redact

# service -> the pair its token endpoint issued that no database write has taken yet, when
# (time.monotonic(): its lifetime runs from then), and the refresh token it replaced
_unsaved: dict[str, tuple[TokenGrant, float, str | None]] = {}
_unsaved_lock = threading.Lock()
_STORE_PAUSES = (0.0, 1.0, 2.0, 4.0)  # seconds before each try on a new connection
# what a try to store a pair may meet: any database error (a lost connection, a server that is
# read-only after a failover, ...) or no connection at all
_STORE_FAILED = (psycopg.Error, OnaiDbError)
# the store's transaction (select ... for update, then the store) on a connection that may
# die between the two: the server ends a session left idle in it instead of holding the
# token row's lock until TCP keepalive gives up (found by review: every refresh waited)
_STORE_TIMEOUTS = (
    "select set_config('lock_timeout', '5s', true), set_config('statement_timeout', '10s', true),"
    " set_config('idle_in_transaction_session_timeout', '5s', true)"
)

# a token is refreshed this long before it ends
EXPIRY_MARGIN_S = 60.0
# a store that finds a pair it did not replace: a person re-authorized meanwhile; their pair
# stays, and the lease goes back (found by review: the next refresh waited for it to lapse,
# also when the store was tried again through a new connection)
_NEWER_PAIR = "a newer pair was stored during this refresh (re-authorized?); it is kept"
# the lease question's wait on a token row another session holds, each time it asks
_BEGIN_LOCK_TIMEOUT = "select set_config('lock_timeout', '2s', true)"


@dataclass(frozen=True)
class Token:
    access_token: str = field(repr=False)  # never in a traceback's or a log's repr
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    version: int

    def expiring(self, margin_s: float = EXPIRY_MARGIN_S) -> bool:
        return self.expires_at is not None and self.expires_at <= datetime.now(UTC) + timedelta(
            seconds=margin_s
        )


@dataclass(frozen=True)
class TokenGrant:
    """What the provider's token endpoint returned."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: float


def _kept(service: str, stored_refresh_token: str | None) -> TokenGrant | None:
    """The pair kept for ``service``, its lifetime shortened by the time it waited, when the
    database holds the refresh token it replaced (``stored_refresh_token``). One that does not
    match is left in place: ``stored_refresh_token`` may have been read before another thread
    kept a newer pair (found by review); a stale one is dropped by the database's check when
    :func:`store_kept_tokens` runs."""
    with _unsaved_lock:
        kept = _unsaved.get(service)
    if kept is None or kept[2] != stored_refresh_token:
        return None
    return _aged(kept[0], kept[1])


# token refreshes waiting for the provider's answer in this process: a worker that stops
# waits for them, since the answer's pair is the only valid one once the provider rotated
_in_flight = 0
_in_flight_lock = threading.Lock()


def refreshes_in_flight() -> int:
    """How many token refreshes of this process wait for the provider's answer now."""
    with _in_flight_lock:
        return _in_flight


def _refreshing(delta: int) -> None:
    global _in_flight
    with _in_flight_lock:
        _in_flight += delta


def has_kept_tokens() -> bool:
    """Whether this process keeps a refreshed pair it could not store yet."""
    with _unsaved_lock:
        return bool(_unsaved)


def _aged(grant: TokenGrant, issued: float) -> TokenGrant:
    """``grant`` with its lifetime shortened by the time since it was ``issued``."""
    return replace(grant, expires_in=max(0.0, grant.expires_in - (time.monotonic() - issued)))


def _forget(service: str, entry: tuple[TokenGrant, float, str | None]) -> None:
    """Drop the pair kept for ``service`` while ``entry`` is the one kept (not a newer pair
    another thread kept since)."""
    with _unsaved_lock:
        if _unsaved.get(service) is entry:
            _unsaved.pop(service, None)


def _store_if_current(
    conn: psycopg.Connection, service: str, grant: TokenGrant, replaced: str | None, worker: str | None
) -> str:
    """Store ``grant`` when the database still holds the refresh token it ``replaced``:
    'stored'; 'already' when the database holds ``grant`` itself (another thread stored it, or
    a lost store committed), 'stale' when another pair is in, 'gone' when the service has no
    token row any more (nothing is written then)."""
    with conn.transaction():
        conn.execute(_STORE_TIMEOUTS)
        row = conn.execute(
            "select refresh_token from public.integration_tokens where service_name = %s for update",
            (service,),
        ).fetchone()
        if row is None:
            return "gone"
        if grant.refresh_token is not None and row[0] == grant.refresh_token:
            return "already"
        if row[0] != replaced:
            return "stale"
        conn.execute(
            "select public.store_integration_token(%s, %s, %s, %s, %s)",
            (service, grant.access_token, grant.refresh_token, grant.expires_in, worker),
        )
    return "stored"


def store_kept_tokens(
    connect: Callable[[], psycopg.Connection], worker: str | None = None, last: bool = False
) -> list[str]:
    """Store every pair this process keeps (see the module's docstring) through a connection
    from ``connect``: for a worker whose connection is re-made, every housekeeping period while
    it keeps one, and on its way out (``last``: the process ends, a pair not stored is lost).
    Returns what was said of each."""
    with _unsaved_lock:
        kept = dict(_unsaved)
    said: list[str] = []
    for service, entry in kept.items():
        issued_grant, issued, replaced = entry
        grant = _aged(issued_grant, issued)
        try:
            with connect() as conn:
                stored = _store_if_current(conn, service, grant, replaced, worker)
        except _STORE_FAILED as exc:
            said.append(
                f"{service}: the kept refreshed token could not be stored ({first_line(exc)}); "
                + (
                    "it is LOST as this process ends: if the next refresh is refused, re-authorize the"
                    " integration"
                    if last
                    else "it is still kept"
                )
            )
            continue
        _forget(service, entry)
        said.append(
            {
                "stored": f"{service}: the kept refreshed token was stored",
                "already": f"{service}: the kept refreshed token is stored already",
                "stale": f"{service}: the kept refreshed token was stale (a newer pair is stored) and is dropped",
                "gone": f"{service}: the kept refreshed token is dropped: the service has no token row any more"
                " (removed by an operator?); re-authorize the integration to use it again",
            }[stored]
        )
    return said


class TokenStore:
    """The tokens of one service, read and refreshed through one connection."""

    def __init__(
        self,
        conn: psycopg.Connection,
        service: str,
        worker: str,
        lease_seconds: float = 30.0,
        wait_seconds: float = 30.0,
        reconnect: Callable[[], psycopg.Connection] | None = None,
    ) -> None:
        self.conn = conn
        self.service = service
        self.worker = worker
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        # a new connection like ``conn``, to store a pair after ``conn`` was lost
        self.reconnect = reconnect

    def load(self, conn: psycopg.Connection | None = None) -> Token:
        row = (
            (conn or self.conn)
            .execute(
                "select access_token, refresh_token, expires_at, token_version"
                " from public.integration_tokens where service_name = %s",
                (self.service,),
            )
            .fetchone()
        )
        if row is None:
            raise TransientError(f"{self.service}: no OAuth tokens stored (run the OAuth consent first)")
        return Token(row[0], row[1], row[2], row[3])

    def refresh(self, seen: Token, do_refresh: Callable[[str], TokenGrant]) -> Token:
        """A token newer than ``seen``: refreshed here once, or by whoever holds the lease."""
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.02
        while True:
            state = self._begin(seen)
            if state == "refreshed":  # (a store whose answer was lost counts: its pair is in)
                current = self.load()
                if _kept(self.service, current.refresh_token) is None:
                    return current
                # newer than ``seen``, but the pair this process keeps replaced it: the stored
                # refresh token is spent; store the kept pair under the lease
                seen = current
                continue
            if state == "acquired":
                current = self.load()
                grant = _kept(self.service, current.refresh_token)
                if grant is None:
                    if not current.refresh_token:
                        self._abort("no refresh token stored")
                        raise TransientError(f"{self.service}: no refresh token stored (re-authorize)")
                    _refreshing(+1)
                    try:
                        grant = do_refresh(current.refresh_token)
                    except Exception as exc:  # any: the lease goes back (found by review:
                        # an answer the client could not read kept it until it lapsed)
                        # redacted as a job's error is: a library's text may quote what it
                        # was given, the refresh token too (found by review)
                        said = str(exc) if isinstance(exc, ProviderError) else f"{type(exc).__name__}: {exc}"
                        self._abort(redact(said, [current.refresh_token]))
                        raise
                    finally:
                        _refreshing(-1)
                return self._store_or_keep(grant, current.refresh_token)
            if time.monotonic() > deadline:
                raise TransientError(
                    f"{self.service}: the token row stayed locked by another session"
                    " (an open transaction on public.integration_tokens?)"
                    if state == "locked"
                    else f"{self.service}: token refresh by another worker did not finish in time"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _begin(self, seen: Token) -> str | None:
        """The refresh lease's state for ``seen`` (acquired, busy, refreshed), or ``locked``
        when another session holds the token row: the question waits on it a few seconds at a
        time, not for as long as that session's transaction lasts (found by review: every
        refresh of every worker hung behind an operator's open ``select ... for update``)."""
        try:
            with self.conn.transaction():
                self.conn.execute(_BEGIN_LOCK_TIMEOUT)
                row = self.conn.execute(
                    "select public.begin_integration_token_refresh(%s, %s, %s, %s)",
                    (self.service, self.worker, seen.version, self.lease_seconds),
                ).fetchone()
        except psycopg.errors.LockNotAvailable:
            return "locked"
        return row[0] if row else None

    def _store_or_keep(self, grant: TokenGrant, replaced: str | None) -> Token:
        """Store a freshly issued pair (it ``replaced`` that refresh token) and return the
        stored token. The pair is kept in the process before the first try, so that no thread
        of it sends the rotated-away refresh token while a store hangs; it is forgotten once
        stored (or once the database holds a newer pair). When the store fails, it is stored
        through new connections; when the database stays away, it stays kept."""
        entry = (grant, time.monotonic(), replaced)
        with _unsaved_lock:
            _unsaved[self.service] = entry  # the newest pair: it replaced what the database holds
        try:
            # conditional, as the pair is visible to the process's other threads from now on
            result = _store_if_current(self.conn, self.service, grant, replaced, self.worker)
        except _STORE_FAILED as exc:
            error: Exception = exc
        else:
            _forget(self.service, entry)  # by identity: a newer pair kept meanwhile stays
            if result == "stale":
                self._abort(_NEWER_PAIR)
            return self.load()
        for pause in _STORE_PAUSES if self.reconnect else ():
            time.sleep(pause)
            try:
                with self.reconnect() as fresh:  # type: ignore[misc]
                    # not stored: the lost store did commit after all, or another pair is in
                    if _store_if_current(fresh, self.service, grant, replaced, self.worker) == "stale":
                        self._abort(_NEWER_PAIR, fresh)
                    _forget(self.service, entry)
                    return self.load(fresh)
            except _STORE_FAILED as again:
                error = again
        raise TransientError(
            f"{self.service}: the refreshed token could not be stored ({first_line(error)});"
            " this worker keeps it and stores it on its next refresh, when its connection is re-made"
            " or when it stops"
        ) from error

    def _abort(self, error: str, conn: psycopg.Connection | None = None) -> None:
        (conn or self.conn).execute(
            "select public.abort_integration_token_refresh(%s, %s, %s)",
            (self.service, self.worker, error[:500]),
        )
