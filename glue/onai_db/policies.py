"""The access matrix (``policies/*.yaml``) and how the live database compares with it.

Every table, view and function in an exposed schema has one entry: for each of the six
matrix roles and each operation, ``all`` (every row), ``deny``, or the name of a row
rule (``own``, ``team``, ...) that the entry's ``rules`` section explains. The test
suite walks every cell against the database; ``coverage()`` is the cheap part of that
check (nothing exposed is missing, RLS is on) and also feeds ``onai-db policies``.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import yaml

from .errors import ConfigError

ROLES = ("anon", "student", "targetologist", "sales_manager", "admin", "service_role")
TABLE_OPS = ("select", "insert", "update", "delete")
VIEW_OPS = ("select",)
FUNCTION_OPS = ("execute",)
OPS_BY_KIND = {"table": TABLE_OPS, "view": VIEW_OPS, "function": FUNCTION_OPS}
BUILTIN_RULES = ("all", "deny")


@dataclass(frozen=True)
class Entry:
    """One exposed object and its cells."""

    name: str  # schema.object
    kind: str  # table | view | function
    cells: dict[str, dict[str, str]]  # role -> op -> rule
    rules: dict[str, str] = field(default_factory=dict)  # rule name -> explanation
    source: str = ""

    @property
    def ops(self) -> tuple[str, ...]:
        return OPS_BY_KIND[self.kind]

    def cell(self, role: str, op: str) -> str:
        return self.cells[role][op]


def load_matrix(project_dir: Path) -> dict[str, Entry]:
    """Read and validate every ``policies/*.yaml``; raises ConfigError on any gap."""
    entries: dict[str, Entry] = {}
    folder = project_dir / "policies"
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ConfigError(f"no access matrix found in {folder}")
    for path in files:
        doc = yaml.safe_load(path.read_text()) or {}
        for name, spec in doc.items():
            if name in entries:
                raise ConfigError(f"{path.name}: {name} is already defined in {entries[name].source}")
            entries[name] = _entry(name, spec, path.name)
    return entries


def _entry(name: str, spec: dict, source: str) -> Entry:
    where = f"{source}: {name}"
    if "." not in name:
        raise ConfigError(f"{where}: name must be schema-qualified")
    kind = spec.get("kind")
    if kind not in OPS_BY_KIND:
        raise ConfigError(f"{where}: kind must be one of {sorted(OPS_BY_KIND)}")
    rules = {str(k): str(v) for k, v in (spec.get("rules") or {}).items()}
    cells: dict[str, dict[str, str]] = {}
    for role in ROLES:
        row = spec.get(role)
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: missing the row for role {role}")
        ops = OPS_BY_KIND[kind]
        if set(row) != set(ops):
            raise ConfigError(f"{where}: role {role} must list exactly {', '.join(ops)}")
        for op, rule in row.items():
            if rule not in BUILTIN_RULES and rule not in rules:
                raise ConfigError(f"{where}: {role}.{op} uses rule {rule!r}, not explained under rules")
        cells[role] = {op: str(rule) for op, rule in row.items()}
    extra = set(spec) - {"kind", "rules", "summary", *ROLES}
    if extra:
        raise ConfigError(f"{where}: unknown keys {sorted(extra)}")
    return Entry(name, kind, cells, rules, source)


def exposed_schemas(project_dir: Path) -> list[str]:
    config = tomllib.loads((project_dir / "supabase" / "config.toml").read_text())
    return list(config.get("api", {}).get("schemas", ["public"]))


@dataclass
class Coverage:
    """What the live database exposes compared with the matrix."""

    exposed: dict[str, str]  # name -> kind
    missing: list[str]  # exposed but not in the matrix
    stale: list[str]  # in the matrix but not in the database
    wrong_kind: list[str]
    rls_disabled: list[str]
    definer_views: list[str]  # views without security_invoker
    overloaded: list[str] = field(default_factory=list)  # functions with several signatures
    # extensions whose objects in an exposed schema the API roles may use: "ext (n objects, e.g. x)"
    extensions: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.stale
            or self.wrong_kind
            or self.rls_disabled
            or self.definer_views
            or self.overloaded
            or self.extensions
        )

    def problems(self) -> list[str]:
        out = [f"{n}: exposed but missing from policies/" for n in self.missing]
        out += [f"{n}: in policies/ but not in the database" for n in self.stale]
        out += [f"{n}: kind differs from policies/" for n in self.wrong_kind]
        out += [f"{n}: row level security is disabled" for n in self.rls_disabled]
        out += [f"{n}: view is not security_invoker" for n in self.definer_views]
        out += [
            f"{n}: overloaded (the matrix names functions, so every signature but one would go unchecked)"
            for n in self.overloaded
        ]
        out += [
            f"extension {e} in an exposed schema: anon or authenticated may call or read them through the"
            " API, and the matrix does not cover extensions; create it in the extensions schema instead"
            for e in self.extensions
        ]
        return out


EXPOSED_OBJECTS_SQL = """
select n.nspname || '.' || c.relname as name,
       case when c.relkind in ('r', 'p') then 'table' else 'view' end as kind,
       c.relrowsecurity as rls,
       coalesce(c.reloptions::text[] && array['security_invoker=true', 'security_invoker=on',
                                              'security_invoker=1', 'security_invoker=yes'], false)
         as invoker
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s)
  and c.relkind in ('r', 'p', 'v', 'm', 'f')
  and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
union all
select n.nspname || '.' || p.proname, 'function', null::boolean, null::boolean
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
where n.nspname = any(%(schemas)s)
  and p.prokind in ('f', 'p')
  and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
"""


# objects an extension put into an exposed schema that an API role may use: the dashboard's
# "enable extension" into public made dblink's functions callable by anon, and coverage said
# "ok" (found by review); the matrix is about onai-db's own objects, so these are reported
EXTENSION_OBJECTS_SQL = """
with api_role as (
  select rolname from pg_roles where rolname in ('anon', 'authenticated')
), member as (
  select e.extname, n.nspname || '.' || p.proname as name,
         exists (select 1 from api_role r where has_function_privilege(r.rolname, p.oid, 'execute')) as usable
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  join pg_depend d on d.objid = p.oid and d.classid = 'pg_proc'::regclass and d.deptype = 'e'
  join pg_extension e on e.oid = d.refobjid
  where n.nspname = any(%(schemas)s)
  union all
  select e.extname, n.nspname || '.' || c.relname,
         exists (select 1 from api_role r
                 where has_table_privilege(r.rolname, c.oid, 'select, insert, update, delete'))
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  join pg_depend d on d.objid = c.oid and d.classid = 'pg_class'::regclass and d.deptype = 'e'
  join pg_extension e on e.oid = d.refobjid
  where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm', 'f')
)
select extname || ' (' || count(*) || ' object(s), e.g. ' || min(name) || ')'
from member
where usable
group by extname
order by extname
"""


def coverage(conn: psycopg.Connection, matrix: dict[str, Entry], schemas: list[str]) -> Coverage:
    rows = conn.execute(EXPOSED_OBJECTS_SQL, {"schemas": schemas}).fetchall()
    extensions = [r[0] for r in conn.execute(EXTENSION_OBJECTS_SQL, {"schemas": schemas}).fetchall()]
    exposed = {name: kind for name, kind, _rls, _inv in rows}
    signatures = Counter(name for name, kind, _rls, _inv in rows if kind == "function")
    rls_off = sorted(name for name, kind, rls, _inv in rows if kind == "table" and not rls)
    definer = sorted(name for name, kind, _rls, inv in rows if kind == "view" and not inv)
    return Coverage(
        exposed=exposed,
        missing=sorted(set(exposed) - set(matrix)),
        stale=sorted(set(matrix) - set(exposed)),
        wrong_kind=sorted(n for n in set(exposed) & set(matrix) if exposed[n] != matrix[n].kind),
        rls_disabled=rls_off,
        definer_views=definer,
        overloaded=sorted(name for name, count in signatures.items() if count > 1),
        extensions=extensions,
    )
