"""OAuth tokens in ``public.integration_tokens`` and the single-flight refresh.

A refresh token can be used once (AmoCRM rotates it on every refresh), so exactly one
worker refreshes: :meth:`TokenStore.refresh` asks the database for the refresh lease;
the winner calls the provider and stores the new pair, everyone else waits until the
stored ``token_version`` moves and then uses the new access token.

A pair the provider issued but the database could not store (the connection was lost) is
kept in the process and stored by its next refresh, instead of calling the provider with a
refresh token it has already rotated away (the integration needed a new OAuth consent).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import psycopg

from .connection import CONNECTION_LOST
from .providers.base import ProviderError, TransientError

# service -> the pair its token endpoint issued that no database write has taken yet, and
# when (time.monotonic()): its lifetime runs from then
_unsaved: dict[str, tuple[TokenGrant, float]] = {}
_unsaved_lock = threading.Lock()


@dataclass(frozen=True)
class Token:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    version: int

    def expiring(self, margin_s: float = 60.0) -> bool:
        return self.expires_at is not None and self.expires_at <= datetime.now(UTC) + timedelta(
            seconds=margin_s
        )


@dataclass(frozen=True)
class TokenGrant:
    """What the provider's token endpoint returned."""

    access_token: str
    refresh_token: str | None
    expires_in: float


def _kept(service: str) -> TokenGrant | None:
    """The pair kept for ``service``, its lifetime shortened by the time it waited."""
    with _unsaved_lock:
        kept = _unsaved.get(service)
    if kept is None:
        return None
    grant, issued = kept
    return replace(grant, expires_in=max(0.0, grant.expires_in - (time.monotonic() - issued)))


class TokenStore:
    """The tokens of one service, read and refreshed through one connection."""

    def __init__(
        self,
        conn: psycopg.Connection,
        service: str,
        worker: str,
        lease_seconds: float = 30.0,
        wait_seconds: float = 30.0,
    ) -> None:
        self.conn = conn
        self.service = service
        self.worker = worker
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds

    def load(self) -> Token:
        row = self.conn.execute(
            "select access_token, refresh_token, expires_at, token_version"
            " from public.integration_tokens where service_name = %s",
            (self.service,),
        ).fetchone()
        if row is None:
            raise TransientError(f"{self.service}: no OAuth tokens stored (run the OAuth consent first)")
        return Token(row[0], row[1], row[2], row[3])

    def store(self, grant: TokenGrant) -> int:
        row = self.conn.execute(
            "select public.store_integration_token(%s, %s, %s, %s, %s)",
            (self.service, grant.access_token, grant.refresh_token, grant.expires_in, self.worker),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def refresh(self, seen: Token, do_refresh: Callable[[str], TokenGrant]) -> Token:
        """A token newer than ``seen``: refreshed here once, or by whoever holds the lease."""
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.02
        while True:
            row = self.conn.execute(
                "select public.begin_integration_token_refresh(%s, %s, %s, %s)",
                (self.service, self.worker, seen.version, self.lease_seconds),
            ).fetchone()
            state = row[0] if row else None
            if state == "refreshed":  # (a store whose answer was lost counts: its pair is in)
                with _unsaved_lock:
                    _unsaved.pop(self.service, None)
                return self.load()
            if state == "acquired":
                grant = _kept(self.service)
                if grant is None:
                    current = self.load()
                    if not current.refresh_token:
                        self._abort("no refresh token stored")
                        raise TransientError(f"{self.service}: no refresh token stored (re-authorize)")
                    try:
                        grant = do_refresh(current.refresh_token)
                    except ProviderError as exc:
                        self._abort(str(exc))
                        raise
                self._store_or_keep(grant)
                return self.load()
            if time.monotonic() > deadline:
                raise TransientError(
                    f"{self.service}: token refresh by another worker did not finish in time"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _store_or_keep(self, grant: TokenGrant) -> None:
        """Store a freshly issued pair; when the connection is lost on the way, keep it in the
        process for the next refresh (the provider has rotated the stored refresh token away)."""
        try:
            self.store(grant)
        except CONNECTION_LOST as exc:
            with _unsaved_lock:
                _unsaved.setdefault(self.service, (grant, time.monotonic()))
            raise TransientError(
                f"{self.service}: the refreshed token could not be stored (database connection lost);"
                " this worker keeps it and stores it on its next refresh"
            ) from exc
        with _unsaved_lock:
            _unsaved.pop(self.service, None)

    def _abort(self, error: str) -> None:
        self.conn.execute(
            "select public.abort_integration_token_refresh(%s, %s, %s)",
            (self.service, self.worker, error[:500]),
        )
