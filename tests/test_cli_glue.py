"""The command line's glue: what the entry point reports for the errors it catches itself, and
that each command hands its options to the library (found by mutation testing)."""

from __future__ import annotations

import contextlib
import errno
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from onai_db import cli as cli_mod
from onai_db.entry import caused_by_ctrl_c
from onai_db.output_mode import json_context, want_json

SRC = "postgresql://u@127.0.0.1:1/landing_src"
TGT = "postgresql://u@127.0.0.1:1/traffic_tgt"


@pytest.fixture(autouse=True)
def _reset_output_mode() -> Any:
    yield
    want_json(False)
    json_context()


def _main_with(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], app: Any
) -> tuple[int, str, str]:
    """``cli.main()`` of a ``--json`` command whose run is ``app``: exit code, stdout, stderr."""
    monkeypatch.setattr(cli_mod, "app", app)
    want_json(True)
    with pytest.raises(SystemExit) as stopped:
        cli_mod.main()
    out = capsys.readouterr()
    assert isinstance(stopped.value.code, int)
    return stopped.value.code, out.out, out.err


def test_a_database_error_behind_a_command_error_gives_its_sqlstate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: a consolidation's database_failure carries the server's SQLSTATE (from the
    psycopg error it was raised from)."""
    from onai_db.errors import ConsolidationError

    def failing(**_kwargs: object) -> None:
        try:
            raise psycopg.errors.DiskFull("could not extend file")
        except psycopg.Error as exc:
            raise ConsolidationError("leads failed: disk full", kind="database_failure") from exc

    code, out, err = _main_with(monkeypatch, capsys, failing)
    assert code == 1 and err.strip() == "error: leads failed: disk full"
    doc = json.loads(out)
    assert (doc["error_kind"], doc["sqlstate"]) == ("database_failure", "53100"), doc


@pytest.mark.parametrize(
    "raised",
    [
        OSError(errno.EACCES, "Permission denied", "/srv/backups"),
        subprocess.TimeoutExpired("pg_dump", 5),
    ],
    ids=["os-error", "timeout"],
)
def test_the_machines_failure_is_kind_system_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raised: Exception
) -> None:
    def failing(**_kwargs: object) -> None:
        raise raised

    code, out, err = _main_with(monkeypatch, capsys, failing)
    assert code == 1 and "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1, err
    doc = json.loads(out)
    assert (doc["error_kind"], doc["exit_code"]) == ("system", 1), doc


def test_an_abort_is_an_interruption(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def aborted(**_kwargs: object) -> None:
        raise typer.Abort()

    code, out, _err = _main_with(monkeypatch, capsys, aborted)
    assert code == 130 and json.loads(out)["error_kind"] == "interrupted"


def test_an_error_raised_while_ctrl_c_is_handled_is_an_interruption(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not only ``raise ... from`` (Python's own wrapping): an error raised while Ctrl-C is
    being handled (a cleanup failing) carries it as its context, and is no bug in onai-db."""

    def cleanup_fails(**_kwargs: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("cannot schedule new futures after shutdown")  # noqa: B904

    code, out, err = _main_with(monkeypatch, capsys, cleanup_fails)
    assert code == 130 and err.strip() == "interrupted" and "Traceback" not in err, err
    assert json.loads(out)["error_kind"] == "interrupted"
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("x")  # noqa: B904
    except ValueError as exc:
        assert caused_by_ctrl_c(exc)


def test_an_interruption_reported_at_start_up_ignores_a_second_ctrl_c(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second Ctrl-C while the first is reported must not cut the document short."""
    from onai_db import entry

    monkeypatch.setattr(sys, "argv", ["onai-db", "monitor", "--json"])
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as stopped:
            entry._interrupted()
        assert stopped.value.code == 130
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class _Done:
    ok: bool = True

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok}


@pytest.fixture()
def consolidation_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import onai_db.commands.consolidate as command

    calls: list[Any] = []
    monkeypatch.setattr(command, "preflight", lambda *_args: None)

    def run(options: Any) -> _Done:
        calls.append(options)
        return _Done()

    monkeypatch.setattr(command, "run_consolidation", run)
    return calls


@pytest.mark.parametrize(
    ("extra", "expected"),
    [((), (False, 20_000, 2)), (("--dry-run", "--batch-size", "123", "--jobs", "1"), (True, 123, 1))],
    ids=["defaults", "given"],
)
def test_consolidate_hands_its_options_to_the_run(
    consolidation_calls: list[Any], tmp_path: Path, extra: tuple[str, ...], expected: tuple[object, ...]
) -> None:
    """``--dry-run`` that did not reach the run would write the target for real."""
    args = [
        "consolidate",
        "--source",
        SRC,
        "--target",
        TGT,
        "--backup-dir",
        str(tmp_path / "b"),
        "--json",
        *extra,
    ]
    result = CliRunner().invoke(cli_mod.app, args)
    assert result.exit_code == 0, result.output
    (options,) = consolidation_calls
    assert (options.dry_run, options.batch_size, options.jobs) == expected
    assert (options.source_url, options.target_url, options.backup_dir) == (SRC, TGT, tmp_path / "b")


def test_consolidates_target_option_beats_the_environment(
    consolidation_calls: list[Any], tmp_path: Path
) -> None:
    """An exported ONAI_DB_URL must not redirect a run given ``--target`` to another database."""
    args = ["consolidate", "--source", SRC, "--target", TGT, "--backup-dir", str(tmp_path / "b"), "--json"]
    result = CliRunner().invoke(cli_mod.app, args, env={"ONAI_DB_URL": "postgresql://u@127.0.0.1:1/from_env"})
    assert result.exit_code == 0, result.output
    assert consolidation_calls[0].target_url == TGT
    doc = json.loads(result.stdout)
    assert doc["target"] == {"database": "127.0.0.1:1/traffic_tgt", "from": "--target"}, doc


@dataclass
class _WorkerReport:
    dead: int = 0

    def summary(self) -> str:
        return "claimed 0"


def test_worker_hands_its_options_to_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import onai_db.commands.worker as command

    calls: list[dict[str, Any]] = []

    def run(_settings: object, **kw: Any) -> _WorkerReport:
        calls.append(kw)
        return _WorkerReport()

    monkeypatch.setattr(command, "run_worker", run)
    args = ["worker", "--once", "--dry-run", "--concurrency", "3", "--services", "sms, email,sms"]
    result = CliRunner().invoke(cli_mod.app, args, env={"ONAI_DB_URL": TGT})
    assert result.exit_code == 0, result.output
    (kw,) = calls
    assert (kw["once"], kw["dry_run"], kw["concurrency"], kw["services"]) == (True, True, 3, ["sms", "email"])
    result = CliRunner().invoke(cli_mod.app, ["worker", "--once"], env={"ONAI_DB_URL": TGT})
    assert (calls[-1]["dry_run"], calls[-1]["concurrency"], calls[-1]["services"]) == (False, None, None)


def test_monitor_hands_days_to_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    import onai_db.commands.monitor as command

    asked: list[int] = []

    class Snap:
        def as_dict(self) -> dict[str, object]:
            return {"queue": []}

    monkeypatch.setattr(command, "connect", lambda _url: contextlib.nullcontext(None))

    def snap(_conn: object, days: int) -> Snap:
        asked.append(days)
        return Snap()

    monkeypatch.setattr(command, "snapshot", snap)
    result = CliRunner().invoke(cli_mod.app, ["monitor", "--json", "--days", "30"], env={"ONAI_DB_URL": TGT})
    assert result.exit_code == 0, result.output
    assert asked == [30]


def test_policies_exits_1_when_coverage_finds_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI runs `onai-db policies`: a table without RLS must fail it, not only print a line."""
    import onai_db.commands.policies as command
    from onai_db.policies import Coverage

    found = Coverage({"public.x": "table"}, [], [], [], ["public.x"], [])
    monkeypatch.setattr(command, "connect", lambda *_a, **_k: contextlib.nullcontext(None))
    monkeypatch.setattr(command, "require_migrated", lambda *_a: None)
    monkeypatch.setattr(command, "coverage", lambda *_a: found)
    result = CliRunner().invoke(cli_mod.app, ["policies", "--url", TGT], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert (
        "coverage problems" in result.output and "public.x: row level security is disabled" in result.output
    )


def test_types_exits_1_when_the_generated_file_is_out_of_date(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make check` runs `onai-db types`: stale generated types must fail it."""
    import onai_db.commands.types as command
    from onai_db import types_gen

    class Stack:
        def __init__(self, *_a: object) -> None:
            pass

        def database_url(self, db: str) -> str:
            return f"postgresql://u@127.0.0.1:1/{db}"

    monkeypatch.setattr(command, "LocalStack", Stack)
    monkeypatch.setattr(command, "connect", lambda *_a, **_k: contextlib.nullcontext(None))
    monkeypatch.setattr(command, "require_migrated", lambda *_a: None)
    monkeypatch.setattr(
        types_gen, "check", lambda *_a: types_gen.TypesResult(Path("database_types.py"), True)
    )
    result = CliRunner().invoke(cli_mod.app, ["types"], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert "is out of date" in result.output


def test_consolidates_first_stop_signal_ignores_the_later_ones() -> None:
    """Deterministic form of test_a_second_ctrl_c_does_not_cut_the_stop_short (which needs
    the second SIGINT to land while the stop is recorded, and sometimes does not)."""
    import onai_db.commands.consolidate as command

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(KeyboardInterrupt):
            command._interrupt(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@pytest.mark.parametrize(
    "raised",
    [psycopg.errors.AdminShutdown("terminating connection"), OSError(errno.EPIPE, "Broken pipe")],
    ids=["database", "system"],
)
def test_a_database_or_system_error_raised_while_ctrl_c_is_handled_is_an_interruption(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raised: Exception
) -> None:
    """A rollback on the connection Ctrl-C cut, or a pipe closed by it, was reported as a
    database or system failure with exit 1 (found by review)."""

    def cleanup_fails(**_kwargs: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise raised  # noqa: B904

    code, out, err = _main_with(monkeypatch, capsys, cleanup_fails)
    assert code == 130 and err.strip() == "interrupted", err
    assert json.loads(out)["error_kind"] == "interrupted"


def test_demo_hands_its_databases_to_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """`demo --db/--landing-db` make it safe on a shared stack (found by the operator review);
    the two must differ."""
    import onai_db.commands.demo as command

    asked: list[dict[str, object]] = []

    @dataclass
    class Done:
        ok: bool = True

    monkeypatch.setattr(command, "run_demo", lambda _console, **kw: asked.append(kw) or Done())
    args = ["demo", "--rows", "50", "--seed", "4", "--db", "mine", "--landing-db", "mine_landing"]
    result = CliRunner().invoke(cli_mod.app, args)
    assert result.exit_code == 0, result.output
    assert asked == [{"rows": 50, "seed": 4, "dbname": "mine", "landing_db": "mine_landing"}]
    assert CliRunner().invoke(cli_mod.app, ["demo"]).exit_code == 0
    assert asked[-1] == {"rows": 3000, "seed": 1, "dbname": "postgres", "landing_db": "landing"}
    same = CliRunner().invoke(cli_mod.app, ["demo", "--db", "x", "--landing-db", "x"])
    from onai_db.errors import ConfigError

    assert isinstance(same.exception, ConfigError) and same.exception.exit_code == 2, same.output
    assert "the demo needs two databases" in str(same.exception)
    assert len(asked) == 2


def test_demo_exits_1_when_it_found_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make demo` in CI: a demo that found problems (coverage gaps, unaccounted rows) fails
    the step (found by the generator and demo mutation review)."""
    from onai_db.commands import demo as demo_command
    from onai_db.demo import DemoResult

    monkeypatch.setattr(
        demo_command,
        "run_demo",
        lambda _console, **_kw: DemoResult(ok=False, migrations=30, leads=5, seconds=0.1),
    )
    assert CliRunner().invoke(cli_mod.app, ["demo", "--rows", "10"]).exit_code == 1
