"""The embedded local stack: a PostgreSQL 15 cluster under ``.local/`` standing in for
``supabase start`` (which needs Docker).

``up`` = initdb (once) + start on a free loopback port + platform bootstrap + the
migrations pushed by the pinned Supabase CLI. PostgreSQL refuses to run as root, so
when we are root the server runs as an unprivileged OS user.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql

from . import migrate
from .connection import scalar
from .errors import ConfigError, DatabaseUnreachableError, MissingDependencyError, StackError
from .settings import Settings

DEFAULT_PORT = 54322
DEFAULT_DB = "postgres"
SUPERUSER = "supabase_admin"
LOGIN_ROLES = ("postgres", "authenticator", SUPERUSER)
_DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,62}")


def check_db_name(name: str) -> None:
    """Local database names are plain identifiers: they go into URLs and SQL unquoted."""
    if not _DB_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid database name {name!r}: use letters, digits, '_' and '-', "
            "starting with a letter or '_', at most 63 characters"
        )


PG_MAJOR = "15"
INSTALL_HINT = (
    "PostgreSQL 15 server binaries not found: install them with "
    "`apt-get install postgresql-15 postgresql-contrib` "
    "(optional: postgresql-15-plpgsql-check postgresql-15-cron postgresql-15-pgtap), "
    "or set ONAI_DB_PG_BINDIR"
)


# postgresql.conf of hosted Supabase's "Small" compute (2 cores, 2 GB), as Supabase
# published it with its pgvector benchmarks: the instance's 512MB of shared buffers, and
# checkpoints, sorts and plans as on the platform.
SUPABASE_SMALL_INSTANCE = (
    "shared_buffers = '512MB'",
    "effective_cache_size = '1536MB'",
    "maintenance_work_mem = '128MB'",
    "work_mem = '5MB'",
    "wal_buffers = '16MB'",
    "min_wal_size = '1GB'",
    "max_wal_size = '4GB'",
    "checkpoint_completion_target = 0.9",
    "random_page_cost = 1.1",
    "effective_io_concurrency = 200",
    "default_statistics_target = 100",
)


@dataclass
class StackState:
    """What ``.local/stack.json`` records about the cluster."""

    port: int
    data_dir: str
    os_user: str

    def url(self, user: str = "postgres", dbname: str = DEFAULT_DB) -> str:
        check_db_name(dbname)
        password = ":postgres" if user == "postgres" else ""
        return f"postgresql://{user}{password}@127.0.0.1:{self.port}/{dbname}?sslmode=disable"


@dataclass
class StackStatus:
    running: bool
    port: int | None
    data_dir: str | None
    applied: list[str]
    pending: list[str]
    message: str


def pg_bindir(settings: Settings) -> Path:
    """Where initdb/pg_ctl/postgres live; a clear error if PostgreSQL 15 is absent."""
    explicit = settings.get("ONAI_DB_PG_BINDIR")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin"))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    for cand in candidates:
        if (cand / "initdb").exists() and (cand / "pg_ctl").exists() and (cand / "postgres").exists():
            version = subprocess.run(
                [str(cand / "postgres"), "--version"], capture_output=True, text=True, check=False
            ).stdout
            if f") {PG_MAJOR}." in version:
                return cand
    raise MissingDependencyError(INSTALL_HINT)


def psql_program(settings: Settings) -> str:
    """psql from PATH, else the one beside the PostgreSQL 15 server; a clear error without either."""
    found = shutil.which("psql")
    if found:
        return found
    beside = pg_bindir(settings) / "psql"
    if beside.exists():
        return str(beside)
    raise MissingDependencyError("psql is not installed: apt-get install postgresql-client-15")


def _require_program(name: str, package: str, why: str) -> None:
    """A clear error (exit 3) instead of a FileNotFoundError when a system program is absent."""
    if shutil.which(name) is None:
        raise MissingDependencyError(
            f"{name} is not installed; it is needed {why}: install it (Debian: apt-get install "
            f"{package}) or run onai-db as a user other than root"
        )


# the comment `legacy create` puts on its databases: only those are ever dropped by it
FIXTURE_MARKER = "onai-db legacy fixture: generated data, replaced by `onai-db legacy create`"

# what an existing database holds: the legacy fixture's comment, and whether anything of its
# own is there: a table, view, materialized view, foreign table, sequence, function, type or
# schema outside the system schemas and the schemas the platform bootstrap makes, or an
# extension the bootstrap does not install (extensions' own members are not counted). Rows
# in auth.users and onai-db's migration history are asked for separately.
_NOT_OURS = "('pg_catalog', 'information_schema', 'auth', 'extensions')"


def _own_objects(catalog: str, alias: str, namespace_column: str, condition: str) -> str:
    """exists: an object of ``catalog`` matching ``condition``, outside the system and
    bootstrap schemas, that is not an extension's member."""
    return f"""exists (
    select 1 from pg_catalog.{catalog} as {alias}
    join pg_catalog.pg_namespace as n on n.oid = {alias}.{namespace_column}
    where {condition}
      and n.nspname not in {_NOT_OURS} and n.nspname not like 'pg\\_%%'
      and not exists (
        select 1 from pg_catalog.pg_depend as d
        where d.classid = 'pg_catalog.{catalog}'::regclass and d.objid = {alias}.oid and d.deptype = 'e'
      )
  )"""


_CONTENTS_SQL = f"""
select
  coalesce(
    (select shobj_description(d.oid, 'pg_database') from pg_catalog.pg_database as d
     where d.datname = current_database()),
    ''
  ) = %(marker)s,
  {_own_objects("pg_class", "c", "relnamespace", "c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')")}
  or {_own_objects("pg_proc", "p", "pronamespace", "true")}
  or {_own_objects("pg_type", "t", "typnamespace", "t.typtype in ('e', 'd', 'r', 'm', 'b')")}
  or exists (
    select 1 from pg_catalog.pg_namespace as n
    where n.nspname not in ('pg_catalog', 'information_schema', 'auth', 'extensions', 'public', 'pg_toast')
      and n.nspname not like 'pg\\_%%'
  )
  or exists (
    select 1 from pg_catalog.pg_extension as e
    where e.extname not in ('plpgsql', 'uuid-ossp', 'pgcrypto', 'plpgsql_check', 'pg_cron')
  )
"""


@dataclass(frozen=True)
class DatabaseContents:
    migrated: bool  # the onai-db migrations (or their lead table) are there
    fixture: bool  # made by `legacy create`
    has_objects: bool  # relations or functions of its own


def _is_postmaster(pid_file: Path) -> bool:
    """Whether the process postmaster.pid names is a PostgreSQL server. pg_ctl status only asks
    whether that process exists: after a crash and a reboot its number may belong to another
    process of the server's user, and `local up` then took the cluster for running, started
    nothing and failed at its first connection (found by review). Where /proc cannot tell,
    pg_ctl's answer stands."""
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except (OSError, ValueError, IndexError):
        return True
    return Path(os.fsdecode(argv0)).name in ("postgres", "postmaster")


class LocalStack:
    """Operations on the local cluster; every method is safe to call repeatedly."""

    def __init__(self, settings: Settings | None = None, echo: Callable[[str], None] = print) -> None:
        self.settings = settings or Settings.load()
        self.root = self.settings.local_dir
        self.state_file = self.root / "stack.json"
        self.echo = echo

    # ---- state ------------------------------------------------------------------------
    def state(self) -> StackState | None:
        if not self.state_file.is_file():
            return None
        try:
            return StackState(**json.loads(self.state_file.read_text()))
        except (ValueError, TypeError) as exc:
            raise StackError(
                f"{self.state_file} is corrupt ({exc}); run `onai-db local down --purge` to start over"
            ) from exc

    def _save(self, state: StackState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")

    # ---- OS user ----------------------------------------------------------------------
    def _os_user(self) -> str:
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid()).pw_name
        wanted = self.settings.get("ONAI_DB_PG_OS_USER", "postgres") or "postgres"
        try:
            pwd.getpwnam(wanted)
        except KeyError:
            _require_program(
                "useradd",
                "passwd",
                f"to create the OS user {wanted!r} PostgreSQL runs as (onai-db runs as root)",
            )
            made = subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", wanted],
                check=False,
                capture_output=True,
                text=True,
            )
            if made.returncode != 0:
                raise StackError(
                    f"cannot create the OS user {wanted!r} PostgreSQL runs as: useradd failed: "
                    f"{(made.stderr or made.stdout).strip() or f'exit status {made.returncode}'}"
                    " (set ONAI_DB_PG_OS_USER to an existing user)"
                ) from None
        return wanted

    def _as_user(self, user: str, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            _require_program(
                "runuser", "util-linux", f"to run PostgreSQL's programs as {user!r} (PostgreSQL refuses root)"
            )
            return ["runuser", "-u", user, "--", *argv]
        return argv

    def _run(self, user: str, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self._as_user(user, argv), capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise StackError(f"{Path(argv[0]).name} failed: {(proc.stderr or proc.stdout).strip()}")
        return proc

    def _data_dir_for(self, user: str) -> Path:
        """``.local/pgdata`` when the server user can reach it, else a private dir in /var/tmp."""
        preferred = self.root / "pgdata"
        if os.geteuid() != 0:
            return preferred
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self._run(user, ["test", "-x", str(self.root)], check=False)
        if probe.returncode == 0:
            return preferred
        import hashlib

        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        return Path("/var/tmp/onai-db") / digest / "pgdata"

    # ---- ports ------------------------------------------------------------------------
    @staticmethod
    def port_free(port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    def pick_port(self, start: int) -> int:
        for port in range(start, start + 200):
            if self.port_free(port):
                return port
        raise StackError(f"no free loopback port in {start}..{start + 199}")

    # ---- lifecycle --------------------------------------------------------------------
    def running(self, state: StackState | None = None) -> bool:
        state = state or self.state()
        if state is None or not Path(state.data_dir).exists():
            return False
        bindir = pg_bindir(self.settings)
        proc = self._run(state.os_user, [str(bindir / "pg_ctl"), "status", "-D", state.data_dir], check=False)
        return proc.returncode == 0 and _is_postmaster(Path(state.data_dir) / "postmaster.pid")

    def _init_cluster(self, bindir: Path, user: str, data_dir: Path) -> None:
        if data_dir.exists() and not (data_dir / "PG_VERSION").exists():
            broken = data_dir.with_name(f"pgdata.broken-{int(time.time())}")
            data_dir.rename(broken)
            self.echo(f"found an incomplete cluster from a crashed run; moved it to {broken}")
        if (data_dir / "PG_VERSION").exists():
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(data_dir, user=user)
            for parent in data_dir.parents:
                if parent == self.root.parent or str(parent).count("/") < 2:
                    break
                if str(parent).startswith("/var/tmp/onai-db"):
                    os.chmod(parent, 0o755)
        data_dir.chmod(0o700)
        self.echo(f"initdb: new PostgreSQL {PG_MAJOR} cluster in {data_dir}")
        self._run(
            user,
            [
                str(bindir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ],
        )
        conf = data_dir / "postgresql.conf"
        preload = (
            "pg_cron" if (Path(self._sharedir(bindir)) / "extension" / "pg_cron.control").exists() else ""
        )
        extra = [
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = ''",
            "max_connections = 200",
            # memory, WAL and planner settings of a hosted Supabase "Small" instance (2 cores,
            # 2 GB), as Supabase configures it: PostgreSQL's own defaults (max_wal_size 1GB)
            # would checkpoint every few seconds under bulk writes that Supabase absorbs
            *SUPABASE_SMALL_INSTANCE,
            "fsync = on",
            "synchronous_commit = on",
            "log_min_messages = warning",
            "logging_collector = off",
            f"shared_preload_libraries = '{preload}'",
            "cron.database_name = 'postgres'" if preload else "",
        ]
        with conf.open("a") as fh:
            fh.write("\n# onai-db local stack\n" + "\n".join(line for line in extra if line) + "\n")

    @staticmethod
    def _sharedir(bindir: Path) -> str:
        pg_config = bindir / "pg_config"
        exe = str(pg_config) if pg_config.exists() else (shutil.which("pg_config") or "pg_config")
        out = subprocess.run([exe, "--sharedir"], capture_output=True, text=True, check=False)
        return out.stdout.strip() or f"/usr/share/postgresql/{PG_MAJOR}"

    def start(self) -> StackState:
        """Initialise (once) and start the cluster; returns its state."""
        bindir = pg_bindir(self.settings)
        previous = self.state()
        user = previous.os_user if previous else self._os_user()
        data_dir = Path(previous.data_dir) if previous else self._data_dir_for(user)
        self._init_cluster(bindir, user, data_dir)
        wanted_port = previous.port if previous else int(self.settings.get("ONAI_DB_PORT") or DEFAULT_PORT)
        state = StackState(port=wanted_port, data_dir=str(data_dir), os_user=user)
        if self.running(state):
            return state
        pid_file = data_dir / "postmaster.pid"
        if pid_file.exists():
            pid_file.unlink()
            self.echo("removed a stale postmaster.pid left by a crashed run")
        if not self.port_free(state.port):
            new_port = self.pick_port(state.port + 1)
            self.echo(f"port {state.port} is busy; using {new_port}")
            state.port = new_port
        log = data_dir.parent / "postgres.log"
        log.touch()
        if os.geteuid() == 0:
            shutil.chown(log, user=user)
        proc = self._run(
            user,
            [
                str(bindir / "pg_ctl"),
                "start",
                "-D",
                str(data_dir),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {state.port}",
            ],
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
            raise StackError(f"PostgreSQL did not start (see {log}): {tail or proc.stderr.strip()}")
        self._save(state)
        return state

    def stop(self) -> bool:
        state = self.state()
        if state is None or not self.running(state):
            return False
        bindir = pg_bindir(self.settings)
        self._run(
            state.os_user,
            [str(bindir / "pg_ctl"), "stop", "-D", state.data_dir, "-m", "fast", "-w"],
        )
        return True

    def purge(self) -> None:
        """Stop and delete the cluster and its state."""
        state = self.state()
        self.stop()
        if state is not None and Path(state.data_dir).exists():
            shutil.rmtree(state.data_dir)
        if self.root.exists():
            shutil.rmtree(self.root)

    # ---- databases --------------------------------------------------------------------
    def admin_connect(self, dbname: str = DEFAULT_DB) -> psycopg.Connection:
        state = self.require_running()
        return psycopg.connect(state.url(SUPERUSER, dbname), autocommit=True, client_encoding="UTF8")

    def require_running(self) -> StackState:
        state = self.state()
        if state is None or not self.running(state):
            raise StackError("the local stack is not running; start it with `onai-db local up`")
        return state

    def bootstrap(self, dbname: str = DEFAULT_DB) -> None:
        """Apply the platform bootstrap (roles, auth, extensions, default privileges)."""
        sql = resources.files("onai_db").joinpath("sql/platform_bootstrap.sql").read_text()
        with self.admin_connect(dbname) as conn:
            conn.execute(sql)

    @staticmethod
    def maintenance_db(dbname: str) -> str:
        """Where to connect to create or drop ``dbname``: the ``postgres`` database, or
        ``template1`` when ``postgres`` itself is meant. Never ``template1`` otherwise:
        while any session is connected to it, PostgreSQL refuses to copy it (55006), so
        two tools creating databases at once would fail."""
        return "template1" if dbname == DEFAULT_DB else DEFAULT_DB

    def database_exists(self, dbname: str) -> bool:
        with self.admin_connect(self.maintenance_db(dbname)) as conn:
            return (
                conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone() is not None
            )

    def contents(self, dbname: str) -> DatabaseContents | None:
        """What an existing database holds (None when it does not exist)."""
        if not self.database_exists(dbname):
            return None
        first = migrate.local_migrations(self.settings.project_dir)[0].version
        with self.admin_connect(dbname) as conn:
            row = conn.execute(_CONTENTS_SQL, {"marker": FIXTURE_MARKER}).fetchone()
            assert row is not None
            fixture, has_objects = bool(row[0]), bool(row[1])
            # onai-db's own history (its first migration), not any project's: another
            # Supabase project's database has a supabase_migrations schema too (found by review)
            migrated = bool(scalar(conn, "select to_regclass('public.traffic_leads') is not null"))
            history = scalar(conn, "select to_regclass('supabase_migrations.schema_migrations') is not null")
            if not migrated and history:
                migrated = bool(
                    scalar(
                        conn,
                        "select exists (select 1 from supabase_migrations.schema_migrations where version = %s)",
                        (first,),
                    )
                )
            if not has_objects and scalar(conn, "select to_regclass('auth.users') is not null"):
                has_objects = bool(scalar(conn, "select exists (select 1 from auth.users)"))
        return DatabaseContents(migrated, fixture, has_objects)

    def foreign(self, dbname: str) -> str | None:
        """What a database that ``local up`` refuses holds, or None when it is onai-db's (or
        empty, or absent)."""
        found = self.contents(dbname)
        if found is None or found.migrated or not found.has_objects:
            return None
        if found.fixture:
            return "a legacy Landing fixture made by `onai-db legacy create`"
        return "tables, views or functions but not the onai-db migrations (a Landing copy? another database?)"

    def refuse_foreign(self, dbname: str, action: str) -> None:
        """``local up`` / ``local reset`` work on onai-db's databases only: an existing database
        with objects of its own but without the migrations (a Landing fixture, a restored
        Landing copy, another project's database) would get the bootstrap and every migration,
        or be dropped."""
        what = self.foreign(dbname)
        if what is None:
            return
        effect = "drop it" if action == "reset" else "apply the platform bootstrap and every migration to it"
        raise ConfigError(
            f"database {dbname!r} holds {what}; `onai-db local {action}` would {effect}:"
            " choose another --db (or drop it yourself if it is not needed)"
        )

    def create_database(self, dbname: str, drop: bool = False) -> None:
        check_db_name(dbname)
        with self.admin_connect(self.maintenance_db(dbname)) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
            if exists and drop:
                conn.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = %s and pid <> pg_backend_pid()",
                    (dbname,),
                )
                conn.execute(sql.SQL("drop database {}").format(sql.Identifier(dbname)))
                exists = None
            if not exists:
                # template0 (pristine; the bootstrap runs per database): a session that
                # happens to be connected to template1 cannot make this fail
                conn.execute(sql.SQL("create database {} template template0").format(sql.Identifier(dbname)))

    def database_url(self, dbname: str = DEFAULT_DB, user: str = "postgres") -> str:
        return self.require_running().url(user, dbname)

    def up(self, dbname: str = DEFAULT_DB, fresh: bool = False) -> StackState:
        """Start the cluster, bootstrap the platform and push pending migrations."""
        state = self.start()
        if not fresh:
            self.refuse_foreign(dbname, "up")
        if dbname != DEFAULT_DB or fresh:
            self.create_database(dbname, drop=fresh)
        self.bootstrap(dbname)
        migrate.push(self.settings.project_dir, state.url("postgres", dbname), echo=self.echo)
        return state

    def reset(self, dbname: str = DEFAULT_DB) -> StackState:
        """Drop and recreate the database, then bootstrap and push every migration."""
        self.start()
        self.refuse_foreign(dbname, "reset")
        self.create_database(dbname, drop=True)
        return self.up(dbname)

    def status(self, dbname: str = DEFAULT_DB) -> StackStatus:
        state = self.state()
        if state is None:
            return StackStatus(False, None, None, [], [], "not initialised (run `onai-db local up`)")
        if not self.running(state):
            return StackStatus(False, state.port, state.data_dir, [], [], "stopped")
        local = migrate.local_migrations(self.settings.project_dir)
        check_db_name(dbname)
        if not self.database_exists(
            dbname
        ):  # was "cannot connect ...: database ... does not exist", no way out named
            raise DatabaseUnreachableError(
                f"database {dbname} does not exist on the local stack (`onai-db local up --db {dbname}` makes it)"
            )
        applied = migrate.applied_versions(state.url("postgres", dbname))
        pending = [m.filename for m in local if m.version not in applied]
        done = [m.filename for m in local if m.version in applied]
        message = "running"
        if pending:  # "running" alone read as ready for a database without a single migration
            what = (
                f"database {dbname} has no onai-db migrations"
                if not done
                else f"{len(pending)} migration(s) pending"
            )
            advice = f"`onai-db local up --db {dbname}` applies them"
            foreign = self.foreign(dbname) if not done else None
            if foreign is not None:  # `local up` refuses it: advice that led nowhere (found by review)
                what, advice = f"database {dbname} holds {foreign}", "choose another --db for onai-db"
            message = f"running; {what} ({advice})"
        return StackStatus(True, state.port, state.data_dir, done, pending, message)
