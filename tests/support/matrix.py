"""Walk the access matrix cell by cell against the live database.

Per exposed object the matrix says, for each role and operation, ``all``, ``deny`` or a
named row rule. An *adapter* (``tests/support/adapters_<domain>.py``, collected
automatically) tells the walker how to exercise the object:

- ``TableAdapter``: the key columns, one Python predicate per rule name (given the
  acting user, a row as the service role sees it, and the cast), candidate rows for
  INSERT, a column to touch for UPDATE, and an optional ``seed`` that adds rows (as the
  service role, inside the test's transaction) so that every rule has rows on both
  sides of its boundary.
- ``FunctionAdapter``: how to call the function as an actor, and for rule cells a check
  that the result is scoped as the rule says.

Verdicts, per cell:
- select: the actor sees exactly the rows the rule admits (``deny``: none, or 42501);
- insert: every candidate the rule admits succeeds, every other fails with 42501;
- update/delete: on every row, the statement affects it iff the rule admits it;
- execute: ``all`` succeeds, ``deny`` fails with 42501, a rule runs its check.
Every write is tried inside a savepoint and rolled back.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from .cast import Cast
from .postgrest import SERVICE, Actor, ApiError, PostgrestSession

Row = dict[str, Any]
RulePredicate = Callable[[Actor, Row, Cast], bool]


@dataclass
class TableAdapter:
    key: tuple[str, ...] = ("id",)
    rules: dict[str, RulePredicate] = field(default_factory=dict)
    insert_samples: Callable[[Cast, Actor], list[Row]] | None = None
    update_column: str | None = None
    seed: Callable[[PostgrestSession, Cast], None] | None = None


@dataclass
class FunctionAdapter:
    call: Callable[[PostgrestSession, Actor, Cast], Any]
    checks: dict[str, Callable[[PostgrestSession, Actor, Cast], None]] = field(default_factory=dict)
    seed: Callable[[PostgrestSession, Cast], None] | None = None


def collect_adapters() -> dict[str, TableAdapter | FunctionAdapter]:
    import support

    found: dict[str, TableAdapter | FunctionAdapter] = {}
    for info in pkgutil.iter_modules(support.__path__):
        if info.name.startswith("adapters_"):
            module = importlib.import_module(f"support.{info.name}")
            for name, adapter in module.ADAPTERS.items():
                assert name not in found, f"two adapters for {name}"
                found[name] = adapter
    return found


def _ident(name: str) -> sql.Composable:
    schema, _, obj = name.partition(".")
    return sql.Identifier(schema, obj)


def _key_of(row: Row, key: tuple[str, ...]) -> tuple:
    return tuple(row[k] for k in key)


def _where_key(key: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(" and ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key)


def admits(rule: str, adapter: TableAdapter, actor: Actor, row: Row, cast: Cast) -> bool:
    if rule == "all":
        return True
    if rule == "deny":
        return False
    return adapter.rules[rule](actor, row, cast)


def all_rows(api: PostgrestSession, name: str) -> list[Row]:
    return api.query(SERVICE, sql.SQL("select * from {}").format(_ident(name)).as_string(api.conn))


def check_select(
    api: PostgrestSession,
    name: str,
    adapter: TableAdapter,
    rule: str,
    actor: Actor,
    cast: Cast,
    *,
    cover: bool = True,
) -> None:
    """``cover``: also insist that a row rule admits some fixture row (false for an actor the
    rule is not written for, such as a user without an app role)."""
    rows = all_rows(api, name)
    expected = {_key_of(r, adapter.key) for r in rows if admits(rule, adapter, actor, r, cast)}
    cols = sql.SQL(", ").join(sql.Identifier(k) for k in adapter.key)
    stmt = sql.SQL("select {} from {}").format(cols, _ident(name)).as_string(api.conn)
    try:
        seen = {_key_of(r, adapter.key) for r in api.query(actor, stmt)}
    except ApiError as err:
        assert rule == "deny" and err.code == "42501", f"{name} select as {actor.label}: {err}"
        return
    assert seen == expected, (
        f"{name} select as {actor.label} ({rule}): saw {len(seen)} rows, expected {len(expected)}; extra={seen - expected}, missing={expected - seen}"
    )
    if cover and rule not in ("deny",):
        assert expected or not rows, f"{name}: rule {rule} admits no row of the fixture; seed more rows"


def _try_write(api: PostgrestSession, actor: Actor, stmt: str, params: list) -> bool:
    """Whether grants and RLS let the write through.

    True when it changed a row, or when it got past the access checks and was stopped by
    integrity instead (e.g. 23503: a lead with a journey cannot be deleted); False when a
    grant or policy stopped it (42501) or USING left no row to change.
    """
    with api.probe():
        try:
            return bool(api.query(actor, stmt, params))
        except ApiError as err:
            return err.code != "42501"


def check_insert(
    api: PostgrestSession,
    name: str,
    adapter: TableAdapter,
    rule: str,
    actor: Actor,
    cast: Cast,
    *,
    cover: bool = True,
) -> None:
    samples = adapter.insert_samples(cast, actor) if adapter.insert_samples else []
    assert samples, f"{name}: the adapter gives no insert samples"
    verdicts = []
    for sample in samples:
        cols = list(sample)
        stmt = sql.SQL("insert into {} ({}) values ({}) returning 1 as ok").format(
            _ident(name),
            sql.SQL(", ").join(sql.Identifier(c) for c in cols),
            sql.SQL(", ").join(sql.Placeholder() for _ in cols),
        )
        want = admits(rule, adapter, actor, sample, cast)
        got = _try_write(api, actor, stmt.as_string(api.conn), [sample[c] for c in cols])
        assert got == want, (
            f"{name} insert {sample} as {actor.label} ({rule}): {'allowed' if got else 'denied'}"
        )
        verdicts.append(want)
    if cover and rule not in BUILTIN:
        assert True in verdicts and False in verdicts, (
            f"{name}: insert samples do not cover both sides of {rule}"
        )


BUILTIN = ("all", "deny")


def check_row_writes(
    api: PostgrestSession,
    name: str,
    adapter: TableAdapter,
    op: str,
    rule: str,
    actor: Actor,
    cast: Cast,
    *,
    cover: bool = True,
) -> None:
    rows = all_rows(api, name)
    assert rows, f"{name}: no rows to try {op} on; add a seed"
    if op == "update":
        col = sql.Identifier(adapter.update_column or adapter.key[0])
        template = sql.SQL("update {} set {} = {} where {} returning 1 as ok").format(
            _ident(name), col, col, _where_key(adapter.key)
        )
    else:
        template = sql.SQL("delete from {} where {} returning 1 as ok").format(
            _ident(name), _where_key(adapter.key)
        )
    stmt = template.as_string(api.conn)
    verdicts = []
    for row in rows:
        want = admits(rule, adapter, actor, row, cast)
        got = _try_write(api, actor, stmt, list(_key_of(row, adapter.key)))
        assert got == want, (
            f"{name} {op} row {_key_of(row, adapter.key)} as {actor.label} ({rule}): {'allowed' if got else 'denied'}"
        )
        verdicts.append(want)
    if cover and rule not in BUILTIN:
        assert True in verdicts and False in verdicts, (
            f"{name}: fixture rows do not cover both sides of {rule} for {op}"
        )


def check_execute(
    api: PostgrestSession, name: str, adapter: FunctionAdapter, rule: str, actor: Actor, cast: Cast
) -> None:
    with api.probe():
        if rule == "deny":
            try:
                adapter.call(api, actor, cast)
            except ApiError as err:
                assert err.code == "42501", f"{name} as {actor.label}: expected 42501, got {err}"
                return
            raise AssertionError(f"{name} as {actor.label}: executed, but the matrix says deny")
        if rule == "all":
            adapter.call(api, actor, cast)
            return
        adapter.checks[rule](api, actor, cast)
