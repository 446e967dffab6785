"""Load the backup files into scratch tables in the target and build the unified stage."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import psycopg
from psycopg import sql

from ..errors import ConsolidationError
from .backup import Manifest, Progress
from .connect import EXTRA_COLUMNS_KEPT_IN, LANDING_CLICK_COLUMNS, UTM_FIELDS, extra_columns


def raw_table(table: str) -> str:
    return f"consolidation_raw_{table}"


# a json text that jsonb may refuse: a unicode surrogate escape (lone ones are refused), an
# exponent of 4+ digits (5 are beyond numeric's range from 1e131072; found by review: with 4,
# 6,400 fractional digits and e-9999 pass numeric's 16,383 digits of scale), or a long value
# (a number whose fractional digits and a 3-digit exponent pass 16,383 is over 15,384
# characters); only these are asked about, with a subtransaction each
_JSONB_DOUBT = r"(\\u[dD][89a-fA-F]|[eE][+-]?[0-9]{4})"
_JSONB_DOUBT_LENGTH = 15000
KEPT_JSON_KEY = "legacy_json_text"


def _jsonb_refuses(ident: str) -> str:
    """SQL condition: the json text in ``ident`` (a quoted column reference) is one jsonb
    cannot hold. Only a value the cheap pattern cannot clear pays for the exact test."""
    doubt = sql.Literal(_JSONB_DOUBT).as_string(None)
    return (
        f"({ident} ~ {doubt} or length({ident}) > {_JSONB_DOUBT_LENGTH})"
        f" and not private.jsonb_accepts({_without_nul(ident)})"
    )


def keep_unreadable_json(conn: psycopg.Connection, table: str, column: str) -> int:
    """Values of a json-typed source column that jsonb cannot hold become
    ``{"legacy_json_text": <the text>}`` in the scratch table (the backup keeps the file as it
    was), so one such value neither stops the run nor is lost. Returns how many."""
    ident = sql.Identifier("private", raw_table(table))
    col = sql.Identifier(column)
    cur = conn.execute(
        sql.SQL(
            "update {t} as r set {c} = pg_catalog.jsonb_build_object({k}, r.{c})::text where {refused}"
        ).format(
            t=ident,
            c=col,
            k=sql.Literal(KEPT_JSON_KEY),
            refused=sql.SQL(_jsonb_refuses(f"r.{col.as_string(None)}")),
        )
    )
    return cur.rowcount


def load_raw(
    conn: psycopg.Connection,
    manifest: Manifest,
    progress: Progress,
    json_columns: dict[str, list[str]] | None = None,
) -> int:
    """(Re)create private.consolidation_raw_<table> (all columns text) from each CSV.
    ``json_columns`` names the source columns of type json (see :func:`keep_unreadable_json`);
    returns how many of their values were kept as text."""
    kept = 0
    for table, info in manifest.tables.items():
        ident = sql.Identifier("private", raw_table(table))
        cols = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in info.columns)
        conn.execute(sql.SQL("drop table if exists {}").format(ident))
        conn.execute(sql.SQL("create unlogged table {} ({})").format(ident, cols))
        conn.execute(
            sql.SQL("comment on table {} is {}").format(
                ident, sql.Literal(f"Scratch copy of Landing {table} (onai-db consolidate)")
            )
        )
        copy_in = sql.SQL("copy {} from stdin with (format csv, header)").format(ident)
        with conn.cursor() as cur:
            with cur.copy(copy_in) as cp, (Path(manifest.directory) / info.file).open("rb") as f:
                while chunk := f.read(1 << 20):
                    cp.write(chunk)
            if cur.rowcount != info.rows:
                raise RuntimeError(f"{table}: loaded {cur.rowcount} rows, the backup has {info.rows}")
        for column in (json_columns or {}).get(table, []):
            kept += keep_unreadable_json(conn, table, column)
        if table in ("lead_journey", "scheduled_notifications"):
            # hash: a B-tree entry cannot hold a value over 2.7 kB, and one absurd lead_id (a
            # text column in Landing) would stop the run; the journey is looked up by equality
            conn.execute(sql.SQL("create index on {} using hash (lead_id)").format(ident))
        try:
            with conn.transaction():
                conn.execute(sql.SQL("create unique index on {} (id)").format(ident))
        except psycopg.errors.UniqueViolation as exc:
            detail = (exc.diag.message_detail or "").replace("Key (id)=", "id ")
            raise ConsolidationError(
                f"source table {table} has duplicate ids ({detail.rstrip('.')}): every legacy row needs its own "
                "id; fix the duplicates in Landing (the backup keeps them) and run again",
                kind="source_ids",
            ) from None
        conn.execute(sql.SQL("analyze {}").format(ident))
        progress("stage", 1, len(manifest.tables) + 1)
    return kept


def parse_json(expr: str) -> str:
    """A legacy json(b) value (text in the raw tables) parsed as jsonb. A ``\\u0000`` escape,
    which a json column accepts and jsonb cannot hold, becomes U+FFFD (the backup keeps the
    original), so one such value does not stop the run."""
    return f"{_without_nul(expr)}::jsonb"


def _without_nul(expr: str) -> str:
    """``expr`` (json text) with each ``\\u0000`` escape as ``\\ufffd``."""
    # an escaped backslash followed by "u0000" is text, not the escape: even runs of backslashes
    fixed = rf"regexp_replace({expr}, '(?<!\\)((?:\\\\)*)\\u0000', '\1\\ufffd', 'g')"
    return f"(case when strpos({expr}, '\\u0000') > 0 then {fixed} else {expr} end)"


def json_object(parsed: str) -> str:
    """A parsed legacy json value as an object (non-objects wrapped, never lost)."""
    return (
        f"(case when {parsed} is null then '{{}}'::jsonb when jsonb_typeof({parsed}) = 'object' "
        f"then {parsed} else jsonb_build_object('legacy_metadata', {parsed}) end)"
    )


def _jsonb(expr: str) -> str:
    """A legacy json column (text in the raw tables) as an object."""
    return json_object(parse_json(expr))


# what counts as blank around a value, as in find_or_create_unified_lead (20261123100400):
# spaces, tabs, line breaks, no-break and other unicode spaces, zero-width spaces
BLANKS = (
    r"U&' \0009\000A\000B\000C\000D\0085\00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009"
    r"\200A\200B\2028\2029\202F\205F\3000\FEFF'"
)


def blank_null(expr: str) -> str:
    """``expr`` trimmed of blanks, NULL when nothing is left (the RPC's rule)."""
    return f"nullif(btrim({expr}, {BLANKS}), '')"


_utm = blank_null


# What a later run compares to tell that Landing changed a row after its import (rows are
# imported once, never re-applied): an md5 of the values the import reads, stored in the
# row's journey event (input ->> 'row_md5'). Times as epoch seconds, so that no session
# setting changes the text. Columns the import does not know (``extra``) are left out, and the
# click columns count only when set, so a row reads as before they were staged.
def lead_row_md5(alias: str) -> str:
    """Fingerprint of a staged lead row (private.consolidation_stage_leads or a copy)."""
    a = alias
    clicked = f"{a}.email_clicked or {a}.sms_clicked or {a}.email_clicked_at is not null or {a}.sms_clicked_at is not null"
    clicks = (
        f"row({a}.email_clicked, extract(epoch from {a}.email_clicked_at), {a}.sms_clicked,"
        f" extract(epoch from {a}.sms_clicked_at))::text"
    )
    return (
        f"md5(row({a}.name, {a}.email, {a}.phone, {a}.source, {a}.utm_source, {a}.utm_medium, {a}.utm_campaign,"
        f" {a}.utm_content, {a}.utm_term, {a}.metadata, {a}.amocrm_lead_id, {a}.amocrm_contact_id,"
        f" {a}.amocrm_synced, {a}.email_sent, {a}.sms_sent, {a}.click_count,"
        f" extract(epoch from {a}.created_at))::text || case when {clicked} then {clicks} else '' end)"
    )


def journey_row_md5(alias: str) -> str:
    """Fingerprint of a raw lead_journey row (its lead link is compared on its own)."""
    a = alias
    return f"md5(row({a}.stage, {a}.source, {a}.metadata, {a}.created_at)::text)"


_STAGE_TEMPLATE = f"""
insert into private.consolidation_stage_leads (
  ord, src, legacy_id, name, email, phone, source, source_canonical, utm_source, utm_medium, utm_campaign, utm_content, utm_term,
  metadata, amocrm_lead_id, amocrm_contact_id, amocrm_synced, email_sent, sms_sent, click_count, created_at,
  email_clicked, email_clicked_at, sms_clicked, sms_clicked_at, extra, phone_n, email_n, problem
)
select
  row_number() over (order by u.created_at, u.src_rank, length(u.legacy_id), u.legacy_id),  -- ids 9 < 10
  u.src, u.legacy_id, u.name, u.email, u.phone, {blank_null("u.source")}, ms.canonical,
  u.utm_source, u.utm_medium, u.utm_campaign, u.utm_content, u.utm_term,
  u.metadata, u.amocrm_lead_id, u.amocrm_contact_id, u.amocrm_synced, u.email_sent, u.sms_sent,
  least(u.click_count, 2147483647)::integer,
  u.created_at, u.email_clicked, u.email_clicked_at, u.sms_clicked, u.sms_clicked_at, u.extra,
  -- identities of the values as the lead stores them: trimmed of blanks, as the RPC trims them
  public.normalize_phone({blank_null("u.phone")}), private.normalize_email({blank_null("u.email")}),
  case
    when {blank_null("u.name")} is null and {blank_null("u.email")} is null
      and {blank_null("u.phone")} is null then 'no name, email or phone'
    when length(u.name) > 200 then 'name longer than 200 characters'
    when length(u.email) > 320 then 'email longer than 320 characters'
    when length(u.phone) > 64 then 'phone longer than 64 characters'
    when length(u.source) > 100 then 'source longer than 100 characters'
    when greatest(length(u.utm_source), length(u.utm_medium), length(u.utm_campaign), length(u.utm_content),
      length(u.utm_term)) > 255 then 'utm value longer than 255 characters'
    when u.click_count < 0 then 'click_count is negative'
    when u.click_count > 2147483647 then 'click_count larger than 2147483647'
    when pg_column_size(u.metadata) > 65536 then 'metadata larger than 64 KiB'
  end
from (
  select
    'landing_leads' as src, 1 as src_rank, r.id as legacy_id, r.name, r.email, r.phone, r.source,
    @landing_utm@, m.meta as metadata,
    r.amocrm_lead_id::bigint as amocrm_lead_id, r.amocrm_contact_id::bigint as amocrm_contact_id,
    coalesce(r.amocrm_synced::boolean, false) as amocrm_synced, coalesce(r.email_sent::boolean, false) as email_sent,
    coalesce(r.sms_sent::boolean, false) as sms_sent, coalesce(r.click_count::bigint, 0) as click_count,
    coalesce(r.created_at::timestamptz, 'epoch') as created_at,
    @landing_clicks@,
    @landing_extra@ as extra
  from private.consolidation_raw_landing_leads as r
  cross join lateral (select {_jsonb("r.metadata")} as meta) as m
  union all
  select
    'unified_lead_tracking', 2, r.id, r.full_name, r.email, r.phone, r.source,
    {_utm("r.utm_source")}, {_utm("r.utm_medium")}, {_utm("r.utm_campaign")}, {_utm("r.utm_content")},
    {_utm("r.utm_term")},
    {_jsonb("r.metadata")} || jsonb_strip_nulls(jsonb_build_object(
      'landing_lead_id', r.landing_lead_id, 'current_stage', r.current_stage)),
    null, null, false, false, false, 0, coalesce(r.created_at::timestamptz, 'epoch'),
    false, null, false, null, @unified_extra@
  from private.consolidation_raw_unified_lead_tracking as r
  union all
  select
    'lead_tracking', 3, r.id, r.name, r.email, r.phone, r.source,
    {_utm("r.utm_source")}, {_utm("r.utm_medium")}, {_utm("r.utm_campaign")}, {_utm("r.utm_content")},
    {_utm("r.utm_term")},
    jsonb_strip_nulls(jsonb_build_object('page_url', r.page_url)),
    null, null, false, false, false, 0, coalesce(r.created_at::timestamptz, 'epoch'),
    false, null, false, null, @tracking_extra@
  from private.consolidation_raw_lead_tracking as r
) as u
left join private.consolidation_map_source as ms on ms.raw = u.source
"""


_INT_TYPES = ("smallint", "integer", "bigint")
_TYPED = ("boolean", *_INT_TYPES)  # columns whose raw text is never blank


# a staged lead row whose other columns (``extra``) stay in the backup only: with them its
# metadata would pass the 64 KiB limit (``s``: private.consolidation_stage_leads)
EXTRA_TOO_BIG = "(s.extra is not null and pg_column_size(s.extra || s.metadata) > 65536)"


def _landing_clicks(columns: Sequence[str]) -> str:
    """landing_leads' click columns when it has them (else not clicked, no time)."""
    out = []
    for c in LANDING_CLICK_COLUMNS:
        at = c.endswith("_at")
        if c not in columns:
            out.append(f"{'null::timestamptz' if at else 'false'} as {c}")
        else:
            out.append(f"r.{c}::timestamptz as {c}" if at else f"coalesce(r.{c}::boolean, false) as {c}")
    return ", ".join(out)


def _landing_utm(columns: Sequence[str]) -> str:
    """landing_leads' UTM fields: its own column when it has one (and it is not blank), else
    the key of the same name in its metadata."""
    out = []
    for c in UTM_FIELDS:
        from_meta = _utm(f"m.meta ->> '{c}'")
        out.append(
            f"coalesce({_utm(f'r.{c}')}, {from_meta}) as {c}" if c in columns else f"{from_meta} as {c}"
        )
    return ", ".join(out)


# an array column's element types read typed, as the same scalar column's are (PostgreSQL's own
# types only: ``public.int4[]`` may be anything); other elements (json included: its text may be
# one jsonb refuses) are kept as their text
_ARRAY_AS = {
    "int2[]": "bigint[]",
    "int4[]": "bigint[]",
    "int8[]": "bigint[]",
    "bool[]": "boolean[]",
    "jsonb[]": "jsonb[]",
}


def _extra_value(ident: str, kind: str) -> str:
    """A column's value (text in the raw tables) as its jsonb value: booleans and integers
    typed, json parsed (a json text jsonb refuses stays text; only a value that may be one is
    tried, as in :func:`keep_unreadable_json`), an array as a JSON array (nested for more
    dimensions, its elements as :data:`_ARRAY_AS` says; it was one string), text as it is."""
    if kind.endswith("[]"):
        return f"to_jsonb({ident}::{_ARRAY_AS.get(kind, 'text[]')})"
    if kind == "boolean":
        return f"{ident}::boolean"
    if kind in _INT_TYPES:
        return f"{ident}::bigint"
    if kind == "jsonb":
        return parse_json(ident)
    if kind == "json":
        return f"(case when {_jsonb_refuses(ident)} then to_jsonb({ident}) else {parse_json(ident)} end)"
    return ident


def _extra_object(table: str, columns: Sequence[str], types: Mapping[str, str]) -> str:
    """The object of the row's columns the import does not know (NULL when the table has
    none or the row has no value in them): a key per column with a value (see
    :func:`_extra_value`; blank text is no value, as :func:`count_extra_values` counts).
    A value is kept whole: a json null inside it stays (found by review: nested nulls were
    stripped), and text is not trimmed."""
    pairs = []
    for c in extra_columns(table, columns):
        ident = f"r.{sql.Identifier(c).as_string(None)}"
        present = (
            f"{blank_null(ident)} is not null"
            if types.get(c, "text") not in _TYPED
            else f"{ident} is not null"
        )
        value = _extra_value(ident, types.get(c, "text"))
        pairs.append(
            f"case when {present} then jsonb_build_object({sql.Literal(c).as_string(None)}, {value})"
            " else '{}'::jsonb end"
        )
    if not pairs:
        return "null::jsonb"
    return f"nullif({' || '.join(pairs)}, '{{}}'::jsonb)"


def stage_sql(columns: Mapping[str, Sequence[str]], types: Mapping[str, Mapping[str, str]]) -> str:
    """The statement that fills private.consolidation_stage_leads, for the source's columns
    (``columns`` and their information_schema ``types`` per legacy table)."""
    holes = {
        "@landing_utm@": _landing_utm(columns["landing_leads"]),
        "@landing_clicks@": _landing_clicks(columns["landing_leads"]),
        "@landing_extra@": _extra_object(
            "landing_leads", columns["landing_leads"], types.get("landing_leads", {})
        ),
        "@unified_extra@": _extra_object(
            "unified_lead_tracking", columns["unified_lead_tracking"], types.get("unified_lead_tracking", {})
        ),
        "@tracking_extra@": _extra_object(
            "lead_tracking", columns["lead_tracking"], types.get("lead_tracking", {})
        ),
    }
    # one pass, so a hole's text (column names from the source) is never searched for holes;
    # not str.format: the statement has braces of its own
    return _HOLE.sub(lambda m: holes[m[0]], _STAGE_TEMPLATE)


_HOLE = re.compile(r"@(landing_utm|landing_clicks|landing_extra|unified_extra|tracking_extra)@")


STAGE_EXPR = "btrim(regexp_replace(lower(btrim({s})), '[^a-z0-9]+', '_', 'g'), '_')"

# Each distinct legacy source / stage spelling is canonicalised once, then joined: the
# regular expressions run per distinct value, not per row (millions of journey rows).
MAP_SQL = (
    "drop table if exists private.consolidation_map_source",
    f"""
    create unlogged table private.consolidation_map_source as
    select x.raw, private.canonical_lead_source({blank_null("x.raw")}) as canonical
    from (
      select source as raw from private.consolidation_raw_landing_leads
      union select source from private.consolidation_raw_unified_lead_tracking
      union select source from private.consolidation_raw_lead_tracking
      union select source from private.consolidation_raw_lead_journey
    ) as x
    where x.raw is not null
    """,
    # hash: a raw value may be longer than a btree entry can be (it is then quarantined)
    "create index on private.consolidation_map_source using hash (raw)",
    "drop table if exists private.consolidation_map_stage",
    f"""
    create unlogged table private.consolidation_map_stage as
    select x.raw, n.stage,
      n.stage ~ '^[a-z][a-z0-9_]*$' and length(n.stage) <= 63
      -- a script's placeholder or an unexpanded macro ('[object Object]', 'undefined',
      -- '{{stage}}', '"undefined";') is no stage, as it is no UTM value: once canonical it
      -- looked like one ('object_object', 'stage', 'undefined')
      and private.utm_touch_value(x.raw) is not null and private.utm_touch_value(n.stage) is not null as ok
    from (select distinct stage as raw from private.consolidation_raw_lead_journey where stage is not null) as x
    cross join lateral (select {STAGE_EXPR.format(s="x.raw")} as stage) as n
    """,
    "create index on private.consolidation_map_stage using hash (raw)",
)


def count_extra_values(
    conn: psycopg.Connection, manifest: Manifest, types: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, dict[str, object]]:
    """Per ``table.column`` the import does not read: how many rows have a value, and where
    those values are kept (the lead's metadata, or only the backup); for a json column, how
    many values jsonb refuses and the metadata keeps as their JSON text (a string: found by
    review, they were not counted)."""
    out: dict[str, dict[str, object]] = {}
    for table, info in manifest.tables.items():
        extra = extra_columns(table, info.columns)
        if not extra:
            continue
        kinds = (types or {}).get(table, {})
        # a blank value is no value (it is not kept either)
        counts: list[sql.Composable] = [
            sql.SQL("count({})").format(sql.SQL(blank_null(sql.Identifier(c).as_string(None)))) for c in extra
        ]
        row = conn.execute(
            sql.SQL("select {} from {}").format(
                sql.SQL(", ").join(counts), sql.Identifier("private", raw_table(table))
            )
        ).fetchone()
        for column, n in zip(extra, list(row or ()), strict=True):
            if n:
                out[f"{table}.{column}"] = {"rows_with_value": n, "kept_in": EXTRA_COLUMNS_KEPT_IN[table]}
        if EXTRA_COLUMNS_KEPT_IN[table] == "backup only":
            continue
        as_text = [c for c in extra if kinds.get(c) == "json"]
        # rows imported whose value of a column stays in the backup only: the lead's metadata
        # would pass 64 KiB with their other columns (found by review: reported as kept in the
        # metadata), or the row's own metadata has another value under the column's name (its
        # key wins, in the lead and in the row's journey event; found by review: not counted)
        left = sql.SQL(", ").join(
            sql.SQL(
                "count(*) filter (where s.extra ? {c} and {too_big}), count(*) filter (where {key_wins})"
            ).format(c=sql.Literal(c), too_big=sql.SQL(EXTRA_TOO_BIG), key_wins=_own_key_wins(c))
            for c in extra
        )
        # json values jsonb refuses, kept in the lead's metadata as their text: only rows
        # imported, whose value joins the metadata (found by review: counted over every row of
        # the table, quarantined ones and those above among them)
        kept_as_text = [
            sql.SQL(
                "count(*) filter (where s.extra ? {c} and not {too_big} and not ({key_wins}) and {refused})"
            ).format(
                c=sql.Literal(c),
                too_big=sql.SQL(EXTRA_TOO_BIG),
                key_wins=_own_key_wins(c),
                refused=sql.SQL(_jsonb_refuses("r." + sql.Identifier(c).as_string(None))),
            )
            for c in as_text
        ]
        raw = (
            sql.SQL(" join {} as r on r.id = s.legacy_id").format(sql.Identifier("private", raw_table(table)))
            if as_text
            else sql.SQL("")
        )
        row = conn.execute(
            sql.SQL(
                "select {} from private.consolidation_stage_leads as s{} where s.src = {} and s.problem is null"
            ).format(sql.SQL(", ").join([left, *kept_as_text]), raw, sql.Literal(table))
        ).fetchone()
        values = list(row or ())
        for i, column in enumerate(extra):
            counted = out.get(f"{table}.{column}")
            for key, n in zip(_LEFT_IN_THE_BACKUP, values[2 * i : 2 * i + 2], strict=True):
                if n and counted is not None:
                    counted[key] = n
        for column, n in zip(as_text, values[2 * len(extra) :], strict=True):
            if n and f"{table}.{column}" in out:
                out[f"{table}.{column}"]["rows_kept_as_json_text"] = n
    return out


def _own_key_wins(column: str) -> sql.Composable:
    """A staged row (``s``) imported with a value of ``column`` that stays in the backup: its
    own metadata has another value under the column's name (count_extra_values)."""
    return sql.SQL(
        "s.extra ? {c} and not {too_big} and s.metadata ? {c} and s.metadata -> {c} is distinct from s.extra -> {c}"
    ).format(c=sql.Literal(column), too_big=sql.SQL(EXTRA_TOO_BIG))


# why an imported row's value of another column is in the backup only (count_extra_values)
_LEFT_IN_THE_BACKUP = ("rows_left_in_the_backup_for_size", "rows_left_in_the_backup_for_a_metadata_key")


def build_stage(
    conn: psycopg.Connection,
    progress: Progress,
    manifest: Manifest,
    types: Mapping[str, Mapping[str, str]] | None = None,
) -> int:
    """Fill private.consolidation_stage_leads from the raw tables (loaded from ``manifest``'s
    files; ``types`` are the source's column types per table); returns its row count."""
    conn.execute("truncate private.consolidation_stage_leads, private.consolidation_stage_plan")
    for stmt in MAP_SQL:
        conn.execute(stmt)
    columns = {table: info.columns for table, info in manifest.tables.items()}
    cur = conn.execute(stage_sql(columns, types or {}).encode())
    conn.execute("analyze private.consolidation_stage_leads")
    progress("stage", 1, None)
    return cur.rowcount
