"""Preflight checks: a clear one-line error before anything is written."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

from ..connection import holds_landing_tables
from ..errors import ConsolidationError
from ..legacy import LEGACY_TABLES
from ..migrate import Migration
from .landing_locks import locked

# columns each legacy table must have (extra columns are backed up and ignored)
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "landing_leads": (
        "id", "email", "name", "phone", "source", "metadata", "amocrm_lead_id", "amocrm_contact_id",
        "amocrm_synced", "email_sent", "sms_sent", "click_count", "created_at",
    ),
    "lead_tracking": (
        "id", "name", "email", "phone", "source", "utm_source", "utm_medium", "utm_campaign", "utm_content",
        "utm_term", "page_url", "created_at",
    ),
    "unified_lead_tracking": (
        "id", "landing_lead_id", "full_name", "email", "phone", "source", "utm_source", "utm_medium",
        "utm_campaign", "utm_content", "utm_term", "current_stage", "metadata", "created_at",
    ),
    "lead_journey": ("id", "lead_id", "stage", "source", "metadata", "created_at"),
    "scheduled_notifications": (
        "id", "lead_id", "channel", "recipient", "template", "payload", "scheduled_for", "status", "sent_at",
        "created_at",
    ),
}  # fmt: skip

# columns read when a legacy table has them: landing_leads' own UTM columns (seed 004 joins
# `landing_leads (id, utm_source)` to the UTM owners) win over the same keys in its metadata;
# its click columns (seed 004's landing_leads, traffic_leads has them) go into their own
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
LANDING_CLICK_COLUMNS = ("email_clicked", "email_clicked_at", "sms_clicked", "sms_clicked_at")
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "landing_leads": (*UTM_FIELDS, *LANDING_CLICK_COLUMNS),
}
# columns left out on purpose: derived values Traffic recomputes, and bookkeeping times
DERIVED_COLUMNS: dict[str, tuple[str, ...]] = {
    "landing_leads": ("phone_normalized", "updated_at"),
    "unified_lead_tracking": ("updated_at",),
    "lead_tracking": ("updated_at",),
}
# where the values of any other column go: into the lead's metadata (a key per column, the
# row's own metadata wins) for the lead tables; only into the backup for the other two
EXTRA_COLUMNS_KEPT_IN = {
    "landing_leads": "traffic_leads.metadata",
    "lead_tracking": "traffic_leads.metadata",
    "unified_lead_tracking": "traffic_leads.metadata",
    "lead_journey": "backup only",
    "scheduled_notifications": "backup only",
}


def extra_columns(table: str, columns: Sequence[str]) -> list[str]:
    """The columns of a legacy table that the import does not read (see EXTRA_COLUMNS_KEPT_IN)."""
    known = {*REQUIRED_COLUMNS[table], *OPTIONAL_COLUMNS.get(table, ()), *DERIVED_COLUMNS.get(table, ())}
    return [c for c in columns if c not in known]


_JSON = ("json", "jsonb")
_TIME = ("timestamp with time zone", "timestamp without time zone", "date")
_INT = ("smallint", "integer", "bigint")
# columns the import casts (when the table has them), and the source types it accepts for them
# (information_schema data_type); anything else is refused before a row is written instead of
# failing mid-run
COLUMN_TYPES: dict[str, dict[str, tuple[str, ...]]] = {
    "landing_leads": {
        "metadata": _JSON, "created_at": _TIME, "amocrm_lead_id": _INT, "amocrm_contact_id": _INT,
        "amocrm_synced": ("boolean",), "email_sent": ("boolean",), "sms_sent": ("boolean",), "click_count": _INT,
        "email_clicked": ("boolean",), "email_clicked_at": _TIME, "sms_clicked": ("boolean",),
        "sms_clicked_at": _TIME,
    },
    "lead_tracking": {"created_at": _TIME},
    "unified_lead_tracking": {"metadata": _JSON, "created_at": _TIME},
    "lead_journey": {"metadata": _JSON, "created_at": _TIME},
    "scheduled_notifications": {"payload": _JSON, "scheduled_for": _TIME, "sent_at": _TIME, "created_at": _TIME},
}  # fmt: skip

PUSH_ADVICE = (
    "run `npx supabase db push --remote=<the target's URL>` from this checkout first"
    " (`onai-db local up` for the local stack)"
)

# objects the target must have: the unified-leads migrations and ours
TARGET_OBJECTS = (
    "public.traffic_leads",
    "public.traffic_lead_journey",
    "private.traffic_lead_identifiers",
    "private.consolidation_runs",
    "private.legacy_lead_map",
    "private.consolidation_quarantine",
    "private.legacy_scheduled_notifications",
    "private.consolidation_stage_leads",
    "private.consolidation_stage_plan",
)


def prepare_source(conn: psycopg.Connection) -> None:
    """Session settings under which the source's text is read the same way whatever the
    database's own settings: UTF-8, ISO dates (a DMY or MDY DateStyle would be read back
    with day and month swapped), UTC. A SQL_ASCII database has no encoding to convert from."""
    row = conn.execute("select current_setting('server_encoding')").fetchone()
    encoding = row[0] if row else ""
    if isinstance(encoding, bytes):  # psycopg hands SQL_ASCII text over undecoded
        encoding = encoding.decode("ascii", "replace")
    if encoding == "SQL_ASCII":
        conn.rollback()
        raise ConsolidationError(
            "the source database's encoding is SQL_ASCII, so its text has no known encoding: restore a dump of "
            "it into a UTF8 database (pg_dump --encoding=<the real encoding>) and consolidate from that",
            kind="source_encoding",
        )
    conn.execute(
        "select set_config('client_encoding', 'UTF8', false), set_config('datestyle', 'ISO, YMD', false),"
        " set_config('intervalstyle', 'postgres', false), set_config('timezone', 'UTC', false)"
    )
    conn.commit()


# the legacy tables whose ids the mapping and the quarantine key on (at most 100 characters)
ID_CHECK_SQL = """
select count(*) filter (where id is null or id::text = ''), count(*) filter (where length(id::text) > 100)
from public.{table}
"""

# a table without a unique index on id (Landing has primary keys) may hold one id twice
UNIQUE_ID_SQL = """
select exists (
  select from pg_catalog.pg_index as i
  join pg_catalog.pg_attribute as a on a.attrelid = i.indrelid and a.attname = 'id'
  where i.indrelid = %s::regclass and i.indisunique and i.indisvalid and i.indpred is null and i.indexprs is null
    and i.indnkeyatts = 1 and i.indkey[0] = a.attnum
)
"""
DUPLICATE_ID_SQL = """
select id::text, count(*) from public.{table} group by id having count(*) > 1 order by count(*) desc, 1 limit 1
"""


# the legacy tables' columns and their information_schema data types, in order. An array is
# named by its element type (``int4[]``, or ``public.mood[]`` for a type of another schema) so
# that its values can be read typed; one whose text is no comma-separated array literal
# (int2vector, box[] and domains over box) stays ``ARRAY`` and is read as text
_SOURCE_COLUMNS_SQL = """
select c.table_name::text, array_agg(c.column_name::text order by c.ordinal_position),
  array_agg(coalesce(a.kind, c.data_type::text) order by c.ordinal_position)
from information_schema.columns as c
left join lateral (
  select case when en.nspname = 'pg_catalog' then e.typname::text else en.nspname || '.' || e.typname end || '[]' as kind
  from pg_catalog.pg_type as t
  join pg_catalog.pg_namespace as tn on tn.oid = t.typnamespace
  join pg_catalog.pg_type as e on e.oid = t.typelem and e.typarray = t.oid
  join pg_catalog.pg_namespace as en on en.oid = e.typnamespace
  where c.data_type = 'ARRAY' and t.typname = c.udt_name and tn.nspname = c.udt_schema and t.typdelim = ','
) as a on true
where c.table_schema = 'public' and c.table_name = any(%s)
group by c.table_name
"""


def source_columns_now(conn: psycopg.Connection) -> dict[str, list[tuple[str, str]]]:
    """Each legacy table's (column, data type) pairs as the source has them now."""
    rows = conn.execute(_SOURCE_COLUMNS_SQL, (list(LEGACY_TABLES),)).fetchall()
    return {name: list(zip(cols, kinds, strict=True)) for name, cols, kinds in rows}


def check_source(
    conn: psycopg.Connection, notice: Callable[[str], None] = lambda _line: None
) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """The source's column lists per legacy table, and each column's information_schema data
    type; raises when a table or column is missing, or when rows have no id (or one longer
    than 100 characters) to be accounted for by. The rows are read once Landing's tables are
    free (:func:`landing_locks.locked`, ``notice`` says when it waits)."""
    prepare_source(conn)
    found = source_columns_now(conn)
    conn.rollback()
    traffic = conn.execute(  # in the catalog: to_regclass on a schema the login may not use fails
        "select exists (select from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n"
        " on n.oid = c.relnamespace where n.nspname = 'private' and c.relname = 'consolidation_runs')"
    ).fetchone()
    if traffic == (True,):
        conn.rollback()
        raise ConsolidationError(
            "the source has onai-db's migrations: it is a Traffic database, not Landing "
            "(are --source and --target swapped, or the same database?)",
            kind="source_is_traffic",
        )
    views = [
        name for (name,) in conn.execute(
            "select table_name::text from information_schema.tables where table_schema = 'public'"
            " and table_name = any(%s) and table_type <> 'BASE TABLE' order by 1",
            (list(LEGACY_TABLES),),
        ).fetchall()
    ]  # fmt: skip
    conn.rollback()
    if views:
        raise ConsolidationError(
            f"source is not a Landing database: {', '.join(views)} in schema public is not a table (a view?)",
            kind="source_not_landing",
        )
    columns = {name: [c for c, _kind in pairs] for name, pairs in found.items()}
    types = {name: dict(pairs) for name, pairs in found.items()}
    missing = [t for t in LEGACY_TABLES if t not in columns]
    # what information_schema leaves out (tables the login cannot read, relations that are no
    # tables) or shows although the login cannot use their schema
    present = conn.execute(
        "select c.relname::text, c.relkind in ('r', 'p'), pg_catalog.has_schema_privilege(c.relnamespace, 'usage')"
        " and pg_catalog.has_table_privilege(c.oid, 'select') from pg_catalog.pg_class as c"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relname = any(%s) order by 1",
        (list(LEGACY_TABLES),),
    ).fetchall()  # fmt: skip
    conn.rollback()
    no_tables = [name for name, table, _ in present if not table and name in missing]
    if no_tables:
        raise ConsolidationError(
            f"source is not a Landing database: {', '.join(no_tables)} in schema public is not a table "
            "(a materialized view?)",
            kind="source_not_landing",
        )
    unreadable = [name for name, table, readable in present if table and not readable]
    if unreadable:
        raise ConsolidationError(
            f"the source login cannot read table(s) {', '.join(unreadable)} (no usage of schema public, or no "
            "SELECT privilege): "
            "connect as postgres (the project's database password)",
            kind="source_not_readable",
        )
    # row level security would hide rows from this login, and they would never be counted
    filtered = [
        name for (name,) in conn.execute(
            "select c.relname::text from pg_catalog.pg_class as c"
            " join pg_catalog.pg_roles as r on r.rolname = current_user"
            " where c.relnamespace = 'public'::regnamespace and c.relname = any(%s) and c.relrowsecurity"
            " and not (r.rolsuper or r.rolbypassrls)"
            " and (c.relforcerowsecurity or not pg_catalog.pg_has_role(c.relowner, 'USAGE'))"
            " order by 1",
            (list(LEGACY_TABLES),),
        ).fetchall()
    ]  # fmt: skip
    conn.rollback()
    if filtered:
        raise ConsolidationError(
            f"row level security may hide rows of {', '.join(filtered)} from the source login "
            f"{conn.info.user!r}: connect as postgres (the project's database password)",
            kind="source_not_readable",
        )
    if missing:
        raise ConsolidationError(
            f"source is not a Landing database: missing table(s) {', '.join(missing)} in schema public",
            kind="source_not_landing",
        )
    for table, required in REQUIRED_COLUMNS.items():
        lacking = [c for c in required if c not in columns[table]]
        if lacking:
            raise ConsolidationError(
                f"source table {table} has an unexpected schema: no column(s) {', '.join(lacking)}",
                kind="source_not_landing",
            )
    for table, expected in COLUMN_TYPES.items():
        for column, accepted in expected.items():
            if column in types[table] and types[table][column] not in accepted:
                raise ConsolidationError(
                    f"source table {table} has an unexpected schema: column {column} is "
                    f"{types[table][column]}, expected {' or '.join(accepted)}",
                    kind="source_not_landing",
                )
    locked(conn, list(LEGACY_TABLES), notice, lambda: _check_ids(conn))
    return columns, types


def _check_ids(conn: psycopg.Connection) -> None:
    """Raises when a legacy table has rows without an id, with one longer than 100
    characters, or with an id twice (in the caller's transaction)."""
    for table in LEGACY_TABLES:
        row = conn.execute(ID_CHECK_SQL.format(table=table)).fetchone()
        nulls, long_ids = row if row else (0, 0)
        if nulls or long_ids:
            what = (
                f"{nulls} row(s) without an id (NULL or empty)"
                if nulls
                else f"{long_ids} row(s) with an id longer than 100 characters"
            )
            raise ConsolidationError(
                f"source table {table} has {what}: every row is accounted for by its id, so give those rows "
                "ids (or remove them) in Landing first; nothing was written",
                kind="source_ids",
            )
        unique = conn.execute(UNIQUE_ID_SQL, (f"public.{table}",)).fetchone()
        twice = None if unique == (True,) else conn.execute(DUPLICATE_ID_SQL.format(table=table)).fetchone()
        if twice:
            raise ConsolidationError(
                f"source table {table} has duplicate ids (id {twice[0][:40]} is in {twice[1]} rows): every legacy "
                "row is accounted for by its id, so fix the duplicates in Landing first; nothing was written",
                kind="source_ids",
            )


def json_typed_columns(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The imported json columns whose source type is ``json`` (not ``jsonb``): their text may
    hold values jsonb refuses (a lone unicode surrogate escape, a number beyond numeric's
    range), which the import keeps as text instead of failing on them."""
    wanted = [(t, c) for t, cols in COLUMN_TYPES.items() for c, kinds in cols.items() if kinds == _JSON]
    rows = conn.execute(
        "select c.table_name::text, c.column_name::text from information_schema.columns as c"
        " join unnest(%s::text[], %s::text[]) as w (t, col) on (w.t, w.col) = (c.table_name, c.column_name)"
        " where c.table_schema = 'public' and c.data_type = 'json' order by 1, 2",
        ([t for t, _ in wanted], [c for _, c in wanted]),
    ).fetchall()
    conn.rollback()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


# how many of the landing_leads ids earlier runs imported are looked up in the source
SAME_SOURCE_SAMPLE = 1000


def check_same_source(
    src: psycopg.Connection, tgt: psycopg.Connection, notice: Callable[[str], None] = lambda _line: None
) -> None:
    """Raises when the target was consolidated from another Landing database before: none of
    a sample of the landing_leads ids (uuids) that earlier runs imported is in this source.
    One Landing per Traffic; rows deleted in Landing since leave the rest of the sample."""
    ids = [
        legacy_id for (legacy_id,) in tgt.execute(
            "select legacy_id from private.legacy_lead_map where source_table = 'landing_leads'"
            " order by legacy_id limit %s",
            (SAME_SOURCE_SAMPLE,),
        ).fetchall()
    ]  # fmt: skip
    tgt.rollback()
    if not ids:
        return
    found = locked(
        src,
        ["landing_leads"],
        notice,
        lambda: src.execute(
            "select count(*) from public.landing_leads where id::text = any(%s)", (ids,)
        ).fetchone(),
    )
    if found == (0,):
        raise ConsolidationError(
            f"the source is not the Landing database this target was consolidated from: none of {len(ids):,} "
            "landing_leads ids imported by earlier runs is in it (one Landing per Traffic; check --source)",
            kind="source_mismatch",
        )


def check_target(
    conn: psycopg.Connection, migrations: Sequence[Migration] = (), checkout: Path | None = None
) -> None:
    """Raises unless the target has the onai-db migrations (ours included): the tables the
    run writes, and, where the Supabase CLI keeps its history (``supabase_migrations``),
    every one of ``migrations`` (this checkout's): a target pushed from an older checkout
    has the tables but not the functions and rules the run relies on."""
    # by name in the catalog: to_regclass on a schema the login may not use fails (42501)
    rows = conn.execute(
        "select o, c.oid is not null,"
        " coalesce(pg_catalog.has_schema_privilege(c.relnamespace, 'usage')"
        " and pg_catalog.has_table_privilege(c.oid, 'select') and pg_catalog.has_table_privilege(c.oid, 'insert')"
        " and pg_catalog.has_table_privilege(c.oid, 'update') and pg_catalog.has_table_privilege(c.oid, 'delete'),"
        " false)"
        " from unnest(%s::text[]) with ordinality as o (o, n)"
        " left join pg_catalog.pg_namespace as s on s.nspname = split_part(o, '.', 1)"
        " left join pg_catalog.pg_class as c on c.relnamespace = s.oid and c.relname = split_part(o, '.', 2)"
        " order by n",
        (list(TARGET_OBJECTS),),
    ).fetchall()
    read_only = conn.execute("select pg_catalog.current_setting('transaction_read_only') = 'on'").fetchone()
    conn.rollback()
    absent = [name for name, present, _ in rows if not present]
    landing = bool(absent) and holds_landing_tables(conn)
    conn.rollback()
    if landing:  # the advice was to push Traffic's schema into Landing
        raise ConsolidationError(
            "the target holds Landing's legacy tables (public.landing_leads is a table), not the onai-db "
            "migrations: it is a Landing database (are --source and --target swapped?); nothing was written",
            kind="target_lacks_migrations",
        )
    if absent:
        raise ConsolidationError(
            f"target lacks the onai-db migrations ({', '.join(absent[:3])}{' ...' if len(absent) > 3 else ''} "
            f"missing): {PUSH_ADVICE}",
            kind="target_lacks_migrations",
        )
    if read_only == (True,):
        raise ConsolidationError(
            "the target is read-only (default_transaction_read_only is on, or it is a standby): "
            "consolidate into the primary, writable Traffic database; nothing was written",
            kind="target_not_writable",
        )
    unwritable = [name for name, _, writable in rows if not writable]
    if unwritable:
        raise ConsolidationError(
            f"the target login cannot write {', '.join(unwritable[:3])}{' ...' if len(unwritable) > 3 else ''} "
            "(no usage of its schema, or no select, insert, update and delete on it): consolidate as the "
            "database owner (postgres, TRAFFIC_DB_URL); nothing was written",
            kind="target_not_writable",
        )
    if not migrations:
        return
    # by oid: naming a schema the login may not use would itself be an error (42501)
    history = conn.execute(
        "select pg_catalog.has_schema_privilege(n.oid, 'usage') and pg_catalog.has_table_privilege(c.oid, 'select')"
        " from pg_catalog.pg_namespace as n join pg_catalog.pg_class as c on c.relnamespace = n.oid"
        " where n.nspname = 'supabase_migrations' and c.relname = 'schema_migrations'"
    ).fetchone()
    if history != (True,):  # pushed by other means (or unreadable): the tables above must do
        conn.rollback()
        return
    applied = {
        str(v)
        for (v,) in conn.execute("select version from supabase_migrations.schema_migrations").fetchall()
    }
    conn.rollback()
    pending = [m for m in migrations if m.version not in applied]
    if pending:
        first = pending[0]
        raise ConsolidationError(
            f"target lacks {len(pending)} of this checkout's {len(migrations)} migrations ("
            + (f"checkout {checkout}, where this onai-db runs from; " if checkout else "")
            + f"the first: {first.filename}): {PUSH_ADVICE}",
            kind="target_lacks_migrations",
        )
