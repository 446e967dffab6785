"""``onai-db`` command line: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import local as local_mod
from .connection import describe_error
from .entry import caused_by_ctrl_c
from .errors import ConfigError, OnaiDbError
from .output_mode import error_document, json_wanted, result_document, want_json
from .render import OutputConsole, plain
from .settings import Settings

app = typer.Typer(
    help="onai-db: the onAI Academy database (Supabase migrations, RLS, glue).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
local_app = typer.Typer(
    help="The embedded local stack (PostgreSQL 15 + platform bootstrap).", no_args_is_help=True
)
app.add_typer(local_app, name="local")

console = OutputConsole()
err_console = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[str, typer.Option("--db", help="Database name in the local cluster.")]


def _stack() -> local_mod.LocalStack:
    return local_mod.LocalStack(Settings.load(), echo=lambda msg: err_console.print(plain(msg), style="dim"))


@local_app.command("up")
def local_up(db: DbOption = local_mod.DEFAULT_DB) -> None:
    """Start the cluster, apply the platform bootstrap and push pending migrations."""
    stack = _stack()
    state = stack.up(db)
    status = stack.status(db)
    console.print(
        f"[green]local stack up[/green] on 127.0.0.1:{state.port} "
        f"({len(status.applied)} migrations applied, {len(status.pending)} pending)"
    )
    console.print(state.url("postgres", db))


@local_app.command("down")
def local_down(
    purge: Annotated[bool, typer.Option(help="Also delete the cluster's data.")] = False,
) -> None:
    """Stop the cluster (``--purge`` also deletes its data)."""
    stack = _stack()
    if purge:
        stack.purge()
        console.print("local stack stopped and deleted")
    else:
        console.print("local stack stopped" if stack.stop() else "local stack was not running")


@local_app.command("status")
def local_status(
    db: DbOption = local_mod.DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Whether the cluster runs, where, and which migrations are applied."""
    want_json(as_json)
    status = _stack().status(db)
    if as_json:
        typer.echo(result_document(status.__dict__, ok=status.running))
    else:
        table = Table(title="onai-db local stack", show_header=False)
        table.add_row("state", status.message)
        table.add_row("port", str(status.port or "-"))
        table.add_row("data", status.data_dir or "-")
        # a stopped cluster cannot be asked: "-", not "0 applied, none pending"
        table.add_row("migrations applied", str(len(status.applied)) if status.running else "-")
        table.add_row("migrations pending", _pending_cell(status.pending) if status.running else "-")
        console.print(table)
    if not status.running:  # the same exit code with and without --json, for scripts
        raise typer.Exit(1)


def _pending_cell(pending: list[str]) -> str:
    """A few names, or the count and the first and last (every name is in ``--json``): the
    table listed all 121 of an empty database's in one cell."""
    if len(pending) <= 3:
        return ", ".join(pending) or "none"
    return f"{len(pending)}: {pending[0]} … {pending[-1]}"


@local_app.command("reset")
def local_reset(db: DbOption = local_mod.DEFAULT_DB) -> None:
    """Drop the database and rebuild it: bootstrap + every migration."""
    state = _stack().reset(db)
    console.print(f"[green]database {db} reset[/green] on 127.0.0.1:{state.port}")


@local_app.command("url")
def local_url(
    db: DbOption = local_mod.DEFAULT_DB,
    role: Annotated[
        str, typer.Option(help="Login role: postgres, authenticator or supabase_admin.")
    ] = "postgres",
) -> None:
    """Print the connection URL of the local database."""
    if role not in local_mod.LOGIN_ROLES:
        raise ConfigError(f"unknown role {role!r}: use one of {', '.join(local_mod.LOGIN_ROLES)}")
    typer.echo(_stack().database_url(db, role))


@local_app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def local_psql(ctx: typer.Context, db: DbOption = local_mod.DEFAULT_DB) -> None:
    """Open psql on the local database (extra arguments go to psql)."""
    url = _stack().database_url(db)
    os.execv(local_mod.psql_program(Settings.load()), ["psql", url, *ctx.args])


# Command groups that live in their own modules register themselves here; each module
# exposes ``register(app: typer.Typer) -> None``.
COMMAND_MODULES: tuple[str, ...] = ("policies", "types", "demo", "legacy", "consolidate", "worker", "monitor")


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"onai_db.commands.{name}").register(app)


_register_commands()


# click's exception classes, wherever this typer takes click from (typer 0.2x vendors its own
# copy, older releases use the click package): BadParameter -> UsageError -> ClickException
# (typed Any: which module they come from is only known at run time)
_USAGE_ERROR: Any = typer.BadParameter.__mro__[1]
_CLICK_ERROR: Any = typer.BadParameter.__mro__[2]


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of the database error behind ``exc`` (itself or its cause), if any."""
    for err in (exc, exc.__cause__):
        if isinstance(err, psycopg.Error) and err.sqlstate:
            return err.sqlstate
    return None


def _fail(
    message: str,
    code: int,
    kind: str,
    *,
    markup: str = "[red]error:[/red] ",
    usage: object = None,
    sqlstate: str | None = None,
) -> None:
    """One line on stderr; when the command was given ``--json``, the same as a JSON object on
    stdout too, so a machine reading stdout gets a document for every error onai-db reports.
    ``kind``: what went wrong, for machines; ``usage``: the click context of a usage error
    (its options parsed so far)."""
    # the message may quote Landing's or a server's text: never markup, control characters
    # as escapes (an ESC in a Landing column's name reached the terminal; found by review)
    err_console.print(Text.assemble(Text.from_markup(markup), plain(message)), highlight=False)
    if json_wanted() or _usage_asked_for_json(usage):
        typer.echo(error_document(message, code, kind, sqlstate))
    sys.exit(code)


def _usage_asked_for_json(ctx: object) -> bool:
    """Whether the command whose options failed to parse was given ``--json``: parsed before
    the bad one, or still among its arguments (an unknown option stops the parsing), and
    not as another option's value (``--target --json``). ``--json=1`` asks too (found by
    review: click refuses the value, and the refusal came without a document)."""
    if getattr(ctx, "params", {}).get("as_json") is True:
        return True
    # click's parser gives no context for an option without its value (`--source` last)
    command = getattr(ctx, "command", None) or _command_of_argv()
    params = getattr(command, "params", [])
    if not any("--json" in getattr(p, "opts", ()) for p in params):
        return False
    takes_value = {
        opt
        for p in params
        if not getattr(p, "is_flag", True) and not getattr(p, "count", False)
        for opt in getattr(p, "opts", ())
    }
    args = sys.argv[1:]
    return any(
        arg.partition("=")[0] == "--json" and prev not in takes_value
        for prev, arg in zip(["", *args], args, strict=False)
    )


def _command_of_argv() -> object:
    """The click command the arguments name (``local status``, ``monitor``), or None."""
    command: Any = typer.main.get_command(app)
    for arg in sys.argv[1:]:
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None:
            break
        command = sub
    return command


def _interrupted_if_ctrl_c(exc: BaseException) -> None:
    """Report an error that Ctrl-C brought about (raised while it was handled: a rollback on a
    connection it cut, a cleanup) as the interruption it is, exit 130 (found by review: a
    database or system error then was exit 1)."""
    if caused_by_ctrl_c(exc):
        _fail("interrupted", 130, "interrupted", markup="")


def main() -> None:
    try:
        # not standalone: click's own error display is a multi-line box; ours is one line
        code = app(prog_name="onai-db", standalone_mode=False)
    except _USAGE_ERROR as exc:  # an unknown option, a value out of range, no command, ...
        if type(exc).__name__ == "NoArgsIsHelpError":  # `onai-db`, `onai-db local`: the help
            exc.show()
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        _fail(exc.format_message() + where, exc.exit_code, "usage", usage=ctx)
    except _CLICK_ERROR as exc:  # e.g. a file option that cannot be opened
        _fail(exc.format_message(), exc.exit_code, "usage")
    except typer.Abort:  # Ctrl-C
        _fail("aborted", 130, "interrupted", markup="")
    except OnaiDbError as exc:
        _fail(str(exc), exc.exit_code, exc.kind, sqlstate=_sqlstate(exc))
    except psycopg.Error as exc:  # a database error no command turned into an OnaiDbError
        _interrupted_if_ctrl_c(exc)
        _fail(describe_error(exc), 1, "database", sqlstate=_sqlstate(exc))
    except (OSError, subprocess.SubprocessError) as exc:  # the machine: a file, directory or
        # program that cannot be used, a program that failed or timed out
        _interrupted_if_ctrl_c(exc)
        _fail(str(exc) or type(exc).__name__, 1, "system")
    except Exception as exc:  # a bug: the traceback for the report, then the usual line
        _interrupted_if_ctrl_c(exc)  # Ctrl-C while a module was imported, wrapped by Python
        traceback.print_exc()
        bug = f"internal error ({type(exc).__name__}: {exc}); this is a bug in onai-db, "
        _fail(bug + "please report it with the traceback above", 1, "internal")
    if code == 130:  # typer turns Ctrl-C into Exit(130), which returns here without a word
        # (found by review: `monitor --json` ended silently, no document); a command that
        # reports its own interruption exits with SystemExit instead
        _fail("interrupted", 130, "interrupted", markup="")
    sys.exit(code if isinstance(code, int) else 0)  # typer.Exit(n) returns n here


if __name__ == "__main__":
    main()
