"""The SQL standards every object of ours keeps, checked on the migrated database.

Functions: ``set search_path = ''`` and a ``comment on``; ``security definer`` only with a
reason written beside it (a ``-- security definer: ...`` comment in the migration that
last defines it). Tables and views: a ``comment on``. Objects that extensions own are
not ours and are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

MIGRATIONS = Path(__file__).resolve().parent.parent / "supabase" / "migrations"
OUR_SCHEMAS = ("public", "private")

_CREATE = re.compile(r"^create (?:or replace )?function\s+([a-z_]+\.[a-z_0-9]+)\s*\(", re.M)
_RENAME = re.compile(
    r"^alter function\s+([a-z_]+)\.([a-z_0-9]+)\s*\([^;]*?\)\s*rename to\s+([a-z_0-9]+)\s*;", re.M
)
_MOVE = re.compile(
    r"^alter function\s+([a-z_]+)\.([a-z_0-9]+)\s*\([^;]*?\)\s*set schema\s+([a-z_]+)\s*;", re.M
)


def _our_functions(conn: psycopg.Connection) -> list[tuple[str, str, list[str] | None, str | None, bool]]:
    return conn.execute(
        """
        select p.oid::regprocedure::text, n.nspname || '.' || p.proname, p.proconfig,
               pg_catalog.obj_description(p.oid, 'pg_proc'), p.prosecdef
        from pg_catalog.pg_proc as p
        join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
        where n.nspname = any(%s)
          and not exists (
            select 1 from pg_catalog.pg_depend as d
            where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
          )
        order by 1
        """,
        (list(OUR_SCHEMAS),),
    ).fetchall()


def _definition_headers() -> dict[str, str]:
    """schema.name -> the text of its last definition up to ``as $$``, with the comment
    block right above it; renames and moves carry a definition to its new name."""
    headers: dict[str, str] = {}
    for path in sorted(MIGRATIONS.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        events = sorted(
            [(m.start(), "create", m) for m in _CREATE.finditer(text)]
            + [(m.start(), "rename", m) for m in _RENAME.finditer(text)]
            + [(m.start(), "move", m) for m in _MOVE.finditer(text)],
            key=lambda event: event[0],
        )
        for start, kind, match in events:
            if kind == "create":
                above = text[:start].rstrip("\n").split("\n")
                comments: list[str] = []
                while above and above[-1].startswith("--"):
                    comments.insert(0, above.pop())
                body_start = text.find("$$", match.end())
                headers[match.group(1)] = "\n".join(comments) + "\n" + text[start:body_start]
                continue
            schema, name, new = match.groups()
            old = f"{schema}.{name}"
            if old in headers:
                headers[f"{schema}.{new}" if kind == "rename" else f"{new}.{name}"] = headers.pop(old)
    return headers


def test_every_function_pins_an_empty_search_path_and_is_commented(owner_conn: psycopg.Connection) -> None:
    functions = _our_functions(owner_conn)
    assert len(functions) > 30  # the check reads something
    unpinned = [sig for sig, _, config, _, _ in functions if 'search_path=""' not in (config or [])]
    uncommented = [sig for sig, _, _, comment, _ in functions if not (comment or "").strip()]
    assert unpinned == [], "functions without set search_path = ''"
    assert uncommented == [], "functions without comment on function"


def test_every_security_definer_function_says_why_beside_it(owner_conn: psycopg.Connection) -> None:
    headers = _definition_headers()
    definers = [(sig, name) for sig, name, _, _, secdef in _our_functions(owner_conn) if secdef]
    assert definers, "no security definer function found: the check reads nothing"
    missing = [sig for sig, name in definers if name not in headers]
    assert missing == [], "security definer functions whose definition the check cannot find"
    unexplained = [
        sig
        for sig, name in definers
        if not re.search(r"^\s*--.*security definer", headers[name], re.M | re.I)
        or not re.search(r"^security definer$", headers[name], re.M)
    ]
    assert unexplained == [], "security definer without a reason written beside it"


def test_every_table_and_view_is_commented(owner_conn: psycopg.Connection) -> None:
    rows = owner_conn.execute(
        """
        select c.oid::regclass::text, c.relkind
        from pg_catalog.pg_class as c
        where c.relnamespace::regnamespace::text = any(%s)
          and c.relkind in ('r', 'p', 'v', 'm')
          and coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '') = ''
        order by 1
        """,
        (list(OUR_SCHEMAS),),
    ).fetchall()
    assert rows == []
