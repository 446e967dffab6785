"""Landing -> Traffic consolidation end to end on the generated legacy fixture."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from rich.console import Console

from onai_db.consolidate import ConsolidationOptions, run_consolidation
from onai_db.consolidate.demo import attribution_summary, seed_demo_targetologists
from onai_db.consolidate.render import render_report
from onai_db.consolidate.runner import checkout_migrations
from onai_db.consolidate.verify import Report, TableCheck
from onai_db.errors import ConfigError, ConsolidationError, DatabaseUnreachableError
from onai_db.local import LocalStack
from onai_db.migrate import local_migrations
from support.consolidation import (
    consolidate,
    fresh_source,
    fresh_target,
    live_writes_before_the_first_batch,
    persons_from_map,
    persons_from_replay,
    replay_one_by_one,
    scratch_db,
    snapshot,
)
from support.json_output import json_document

ROWS = 400


@pytest.fixture(scope="module")
def source(stack: LocalStack) -> str:
    return fresh_source(stack, "cons_landing", rows=ROWS, seed=7)


@pytest.fixture(scope="module")
def consolidated(stack: LocalStack, source: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    target = fresh_target(stack, "cons_target")
    with psycopg.connect(target, autocommit=True) as conn:
        seed_demo_targetologists(conn)
    report = consolidate(source, target, tmp_path_factory.mktemp("c1"), batch_size=97)
    assert report.ok, report.to_json()
    return target


def test_every_source_row_is_accounted_for(source: str, consolidated: str) -> None:
    with psycopg.connect(consolidated) as conn:
        totals = conn.execute(
            "select (select count(*) from private.legacy_lead_map),"
            " (select count(*) from private.consolidation_quarantine where source_table like '%lead%'"
            "   and source_table <> 'lead_journey'),"
            " (select count(*) from public.traffic_lead_journey where legacy_source_table = 'lead_journey'),"
            " (select count(*) from private.consolidation_quarantine where source_table = 'lead_journey'),"
            " (select count(*) from private.legacy_scheduled_notifications),"
            " (select count(*) from private.consolidation_quarantine where source_table = 'scheduled_notifications')"
        ).fetchone()
    with psycopg.connect(source) as src:
        counts = src.execute(
            "select (select count(*) from landing_leads) + (select count(*) from lead_tracking)"
            " + (select count(*) from unified_lead_tracking), (select count(*) from lead_journey),"
            " (select count(*) from scheduled_notifications)"
        ).fetchone()
    assert totals is not None and counts is not None
    assert totals[0] + totals[1] == counts[0]
    assert totals[2] + totals[3] == counts[1]
    assert totals[4] + totals[5] == counts[2]
    assert totals[3] > 0 and totals[5] > 0  # the generator's orphans are quarantined, not dropped


def test_one_person_across_three_tables_is_one_live_lead(consolidated: str) -> None:
    with psycopg.connect(consolidated) as conn:
        rows = conn.execute(
            "select private.live_lead(m.lead_id), array_agg(distinct m.source_table), count(*),"
            " count(*) filter (where m.outcome = 'migrated')"
            " from private.legacy_lead_map as m group by 1 having count(distinct m.source_table) = 3"
        ).fetchall()
        assert rows, "the fixture has people in all three legacy tables"
        for _lead, _tables, n, migrated in rows:
            assert n >= 3 and migrated == 1
        dupes = conn.execute(
            "select count(*) from (select phone_normalized from public.traffic_leads where merged_into is null"
            " and phone_normalized is not null group by 1 having count(*) > 1) as d"
        ).fetchone()
        assert dupes == (0,)
        # every old id resolves to its person
        lead_id = rows[0][0]
        legacy = conn.execute(
            "select source_table, legacy_id from private.legacy_lead_map where private.live_lead(lead_id) = %s",
            (lead_id,),
        ).fetchall()
        for table, legacy_id in legacy:
            assert conn.execute("select private.legacy_lead(%s, %s)", (table, legacy_id)).fetchone() == (
                lead_id,
            )


def test_orphans_and_bad_values_are_quarantined_or_kept_raw(consolidated: str) -> None:
    with psycopg.connect(consolidated) as conn:
        reasons = {
            r[0] for r in conn.execute("select reason from private.consolidation_quarantine").fetchall()
        }
        assert "lead_id is null" in reasons
        assert any(r.endswith("not found in landing_leads") for r in reasons)
        report = conn.execute(
            "select report from private.consolidation_runs where status = 'completed' order by id limit 1"
        ).fetchone()
        assert report is not None
        dq = report[0]["data_quality"]
        assert dq["invalid_emails_kept_raw"] > 0 and dq["unusable_phones_kept_raw"] > 0
        assert dq["mis_encoded_names_kept_raw"] > 0
        # an invalid email is kept raw on a lead, not used as identity
        kept = conn.execute(
            "select count(*) from public.traffic_leads where email is not null and email_normalized is null"
        ).fetchone()
        assert kept is not None and kept[0] > 0
        # proftest spellings are canonical, the raw spelling kept
        assert conn.execute(
            "select count(*) from public.traffic_leads where source_raw ilike 'proftest%' and source <> 'profitest'"
        ).fetchone() == (0,)


def test_attribution_summary_and_coverage(consolidated: str) -> None:
    with psycopg.connect(consolidated) as conn:
        summary = attribution_summary(conn)
        report = conn.execute(
            "select report from private.consolidation_runs where status = 'completed'"
        ).fetchone()
    names = {r.targetologist for r in summary}
    assert {"Arystan", "Muha", "Kenesary"} <= names
    assert report is not None
    assert sum(r.leads for r in summary) == report[0]["leads_consolidated"]
    attributed = sum(r.leads for r in summary if not r.targetologist.startswith("("))
    assert attributed == report[0]["leads_attributed"] > 0
    # each column counts what it is named after, over the live consolidated leads
    with psycopg.connect(consolidated) as conn:
        totals = conn.execute(
            "select count(*) filter (where 'proftest_submitted' = any(stages)),"
            " count(*) filter (where 'expresscourse_submitted' = any(stages)),"
            " count(*) filter (where 'payment_succeeded' = any(stages)),"
            " count(*) filter (where utm_source is null)"
            " from public.traffic_leads where merged_into is null"
            " and id in (select private.live_lead(lead_id) from private.legacy_lead_map)"
        ).fetchone()
    by_name = {r.targetologist: r for r in summary}
    assert totals == (
        sum(r.proftest_submitted for r in summary),
        sum(r.expresscourse_submitted for r in summary),
        sum(r.paid for r in summary),
        by_name["(no UTM)"].leads,
    )
    assert totals[2] > 0 and by_name["(unowned UTM)"].leads > 0
    # the owners first, most leads first; the unowned and no-UTM rows last
    owned = [r for r in summary if not r.targetologist.startswith("(")]
    assert summary[: len(owned)] == owned and [r.leads for r in owned] == sorted(
        (r.leads for r in owned), reverse=True
    )
    assert {r.team for r in owned} != {"-"}


def test_second_run_changes_nothing(source: str, consolidated: str, tmp_path: Path) -> None:
    with psycopg.connect(consolidated) as conn:
        before = snapshot(conn)
    report = consolidate(source, consolidated, tmp_path)
    assert report.ok and not report.changed, report.changes
    with psycopg.connect(consolidated) as conn:
        assert snapshot(conn) == before


def test_result_equals_one_by_one_replay(stack: LocalStack, consolidated: str) -> None:
    replay_url = fresh_target(stack, "cons_replay")
    with psycopg.connect(consolidated) as src, psycopg.connect(replay_url) as dst:
        replayed = replay_one_by_one(src, dst)
        dst.commit()
        ours, theirs = persons_from_map(src), persons_from_replay(dst)
        merges = dst.execute("select count(*) from public.traffic_lead_merges").fetchone()
    assert replayed > ROWS * 0.9
    assert merges is not None and merges[0] > 0  # the replay really merged split identities
    assert ours.keys() == theirs.keys()
    for person, values in ours.items():
        assert values == theirs[person], sorted(person)


def lead_tracking_only(stack: LocalStack, name: str, insert: str) -> str:
    """A Landing source whose only rows are those ``insert`` puts into lead_tracking."""
    source = fresh_source(stack, name, rows=0, seed=1)
    with psycopg.connect(source, autocommit=True) as conn:
        for table in ("lead_journey", "scheduled_notifications", "unified_lead_tracking", "lead_tracking"):
            conn.execute(f"delete from {table}")  # type: ignore[arg-type]
        conn.execute("delete from landing_leads")
        conn.execute(insert)  # type: ignore[arg-type]
    return source


def test_first_touch_ties_are_decided_as_the_one_by_one_replay_decides_them(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Rows of one time (an application writing several tables with now()): the surviving
    first touch is the one a replay through find_or_create_unified_lead keeps, where a merge
    keeps the older lead's touch on a tie, not the one of the row staged first."""
    source = lead_tracking_only(
        stack,
        "cons_tie",
        "insert into lead_tracking (id, name, phone, email, utm_source, created_at) values"
        " (1, 'W', '+77011110001', null, null, '2024-01-01'),"
        " (2, 'L', '+77011110002', 'l@example.com', 'a_src', '2024-01-02'),"
        " (3, 'W', '+77011110001', null, 'b_src', '2024-01-02'),"
        " (4, 'W', '+77011110001', 'l@example.com', null, '2024-01-03')",
    )
    target = fresh_target(stack, "cons_tie_t")
    assert consolidate(source, target, tmp_path).ok
    replay_url = fresh_target(stack, "cons_tie_replay")
    with psycopg.connect(target) as src, psycopg.connect(replay_url) as dst:
        replay_one_by_one(src, dst)
        dst.commit()
        ours, theirs = persons_from_map(src), persons_from_replay(dst)
        first = src.execute(
            "select first_utm_source from public.traffic_leads where merged_into is null"
        ).fetchall()
    assert first == [("b_src",)]
    assert ours == theirs


def test_utm_placeholders_are_no_touch_as_in_the_rpc(stack: LocalStack, tmp_path: Path) -> None:
    """A placeholder utm_source ('undefined', an unexpanded macro) makes no touch and a
    placeholder in another field is no value of the touch, as find_or_create_unified_lead
    decides (the replay); the journey keeps what Landing had, the report counts the rows."""
    source = lead_tracking_only(
        stack,
        "cons_placeholder",
        "insert into lead_tracking (id, name, phone, utm_source, utm_campaign, created_at) values"
        " (1, 'A', '+77011110001', 'undefined', null, '2024-01-01'),"
        " (2, 'A', '+77011110001', 'fb_muha', '{{campaign.name}}', '2024-01-02'),"
        " (3, 'B', '+77011110002', '{{site_source_name}}', 'spring', '2024-01-01'),"
        " (4, repeat('C', 201), '+77011110003', 'undefined', null, '2024-01-01'),"  # quarantined
        " (5, 'D', '+77011110004', '(direct)', null, '2024-01-01'),"
        " (6, 'D', '+77011110004', 'yandex', 'none', '2024-01-02')",  # Yandex's none is a value
    )
    target = fresh_target(stack, "cons_placeholder_t")
    report = consolidate(source, target, tmp_path)
    # rows imported with a placeholder: the quarantined one keeps its values in the quarantine
    assert report.ok and report.data_quality["placeholder_utm_values_kept_raw"] == 4, report.data_quality
    replay_url = fresh_target(stack, "cons_placeholder_replay")
    with psycopg.connect(target) as src, psycopg.connect(replay_url) as dst:
        replay_one_by_one(src, dst)
        dst.commit()
        ours, theirs = persons_from_map(src), persons_from_replay(dst)
        touches = src.execute(
            "select name, first_utm_source, first_utm_campaign, first_touch_at is not null"
            " from public.traffic_leads where merged_into is null order by name"
        ).fetchall()
        kept = src.execute(
            "select utm_source, utm_campaign from public.traffic_lead_journey order by legacy_id"
        ).fetchall()
    assert touches == [("A", "fb_muha", None, True), ("B", None, None, False), ("D", "yandex", "none", True)]
    assert kept == [
        ("undefined", None),
        ("fb_muha", "{{campaign.name}}"),
        ("{{site_source_name}}", "spring"),
        ("(direct)", None),
        ("yandex", "none"),
    ]
    assert ours == theirs


def test_dry_run_writes_nothing(stack: LocalStack, source: str, tmp_path: Path) -> None:
    target = fresh_target(stack, "cons_dry")
    report = consolidate(source, target, tmp_path, dry_run=True)
    assert report.ok and report.changes["leads_created"] > 0
    with psycopg.connect(target) as conn:
        assert conn.execute("select count(*) from public.traffic_leads").fetchone() == (0,)
        assert conn.execute("select count(*) from private.consolidation_runs").fetchone() == (0,)
    assert (tmp_path / "backup" / "manifest.json").is_file()


def test_existing_leads_of_one_person_are_merged_into_the_oldest(
    stack: LocalStack, source: str, tmp_path: Path
) -> None:
    target = fresh_target(stack, "cons_existing")
    with psycopg.connect(source) as src:
        name, email, phone = src.execute(
            "select name, email, phone from landing_leads where email like '%@%.%' and phone ~ '^[+78 ]*7' "
            "and name is not null order by id limit 1"
        ).fetchone() or (None, None, None)
    with psycopg.connect(target, autocommit=True) as conn:
        old = conn.execute(
            "select lead_id from public.find_or_create_unified_lead(p_phone => %s, p_name => 'Known Person',"
            " p_occurred_at => '2020-01-01')",
            (phone,),
        ).fetchone()
        newer = conn.execute(
            "select lead_id from public.find_or_create_unified_lead(p_email => %s, p_occurred_at => '2021-01-01')",
            (email,),
        ).fetchone()
        assert old and newer and old != newer
    report = consolidate(source, target, tmp_path)
    assert report.ok
    with psycopg.connect(target) as conn:
        survivor = conn.execute(
            "select private.live_lead(%s), private.live_lead(%s)", (old[0], newer[0])
        ).fetchone()
        assert survivor == (old[0], old[0])
        lead = conn.execute(
            "select name, created_at::date from public.traffic_leads where id = %s", (old[0],)
        ).fetchone()
        assert lead is not None and lead[0] == "Known Person"  # a known value is never overwritten
        assert str(lead[1]) == "2020-01-01"
        assert conn.execute(
            "select count(*) from public.traffic_lead_merges where winner_id = %s and loser_id = %s",
            (old[0], newer[0]),
        ).fetchone() == (1,)
    del name


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["kill-9", "ctrl-c", "sigterm"]
)
def test_crash_in_the_middle_then_rerun_equals_uninterrupted(
    stack: LocalStack, tmp_path: Path, sig: signal.Signals
) -> None:
    """Killed (kill -9) or interrupted (Ctrl-C, with --json) after five batches: the re-run resumes
    and ends with what an uninterrupted run gives. Ctrl-C also says so: exit code 130, one JSON
    document on stdout, and the run recorded as interrupted; so does SIGTERM (systemd, Kubernetes,
    `timeout`), which killed the run without a word before (found by review)."""
    src = fresh_source(stack, "cons_landing_big", rows=3000, seed=11)
    clean, crashed = fresh_target(stack, "cons_clean"), fresh_target(stack, "cons_crashed")
    assert consolidate(src, clean, tmp_path / "a", batch_size=30).ok
    cmd = [
        sys.executable, "-c", "from onai_db.cli import main; main()", "consolidate", "--source", src,
        "--target", crashed, "--batch-size", "30", "--backup-dir", str(tmp_path / "b"), "--json",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1]
    )
    signalled = False
    with psycopg.connect(crashed, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            n = conn.execute("select count(*) from private.consolidation_batches").fetchone()
            if n and n[0] >= 5:
                proc.send_signal(sig)
                signalled = True
                break
            time.sleep(0.01)
    out, err = proc.communicate(timeout=120)
    assert signalled, err
    with psycopg.connect(crashed) as conn:
        done = conn.execute("select count(*) from private.consolidation_batches").fetchone()
        status = conn.execute("select status from private.consolidation_runs").fetchall()
    assert done is not None and done[0] >= 5
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert proc.returncode == 130, err
        doc = json.loads(out)
        assert {k: v for k, v in doc.items() if k not in ("source", "target")} == {
            "ok": False,
            "error": "interrupted: batches committed so far stay; run the same command again to resume",
            "error_kind": "interrupted",
            "exit_code": 130,
        }
        assert doc["target"]["from"] == "--target" and doc["source"]["from"] == "--source", doc
        assert "Traceback" not in err
        assert status == [("interrupted",)]
    else:
        assert proc.returncode == -signal.SIGKILL
        assert status == [("running",)]
    report = consolidate(src, crashed, tmp_path / "c", batch_size=30)
    assert report.ok and report.resumed_from is not None
    with psycopg.connect(clean) as a, psycopg.connect(crashed) as b:
        assert snapshot(a) == snapshot(b)


def test_one_run_at_a_time_per_target(stack: LocalStack, source: str, tmp_path: Path) -> None:
    from onai_db.consolidate.runner import LOCK_KEY, _take_lock

    target = fresh_target(stack, "cons_locked")
    with psycopg.connect(target, autocommit=True) as other:
        other.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        holder = other.execute("select pg_backend_pid()").fetchone()[0]
        said: list[str] = []
        with pytest.raises(ConsolidationError, match="another onai-db consolidate is running") as refused:
            consolidate(source, target, tmp_path, lock_wait_s=0.5, notice=said.append)
        assert refused.value.kind == "busy"
        # the holder is named, so the operator can find it (it was only "wait for it")
        assert f"(server process {holder}, since " in str(refused.value), str(refused.value)
        # and the wait is said when it begins (it was silent for its 15 s)
        assert len(said) == 1 and said[0].startswith("another onai-db consolidate holds this target"), said
        assert f"(server process {holder}, since " in said[0] and "waiting up to 0.5 s" in said[0], said
    with psycopg.connect(target) as conn:
        assert conn.execute("select count(*) from private.consolidation_runs").fetchone() == (0,)
    # a lock freed during the wait: the run goes on, and says so
    with psycopg.connect(target, autocommit=True) as other, psycopg.connect(target, autocommit=True) as conn:
        other.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        said.clear()
        threading.Timer(0.7, lambda: other.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))).start()
        _take_lock(conn, 30.0, said.append)
        assert said[-1] == "the other run's lock is free: going on" and len(said) == 2, said


def test_bad_input_is_one_clear_error_and_nothing_written(
    stack: LocalStack, source: str, tmp_path: Path
) -> None:
    target = fresh_target(stack, "cons_bad")
    with pytest.raises(DatabaseUnreachableError, match="cannot connect to the source") as refused:
        consolidate("postgresql://postgres:postgres@127.0.0.1:1/nope", target, tmp_path)
    assert refused.value.kind == "database_unreachable"
    with pytest.raises(
        ConfigError, match=r"the source \(Landing\) database URL cannot be read: missing"
    ) as refused:
        consolidate("not-a-url", target, tmp_path)
    assert refused.value.kind == "config"
    # the target itself (its compatibility views landing_leads, lead_journey look like Landing's)
    with pytest.raises(ConsolidationError, match="it is a Traffic database, not Landing") as refused:
        consolidate(target, target, tmp_path)
    assert refused.value.kind == "source_is_traffic"
    with pytest.raises(ConsolidationError, match="are --source and --target swapped, or the same") as refused:
        consolidate(target, source, tmp_path)
    assert refused.value.kind == "source_is_traffic"
    # Landing as the target: the advice was to push Traffic's migrations into it (found by review)
    with pytest.raises(ConsolidationError, match="holds Landing's legacy tables") as refused:
        consolidate(source, source, tmp_path)
    assert refused.value.kind == "target_lacks_migrations"
    assert "swapped?); nothing was written" in str(refused.value) and "db push" not in str(refused.value)
    with psycopg.connect(source) as conn:
        assert conn.execute("select to_regclass('private.consolidation_runs')").fetchone() == (None,)
    # a source with a view where a legacy table belongs
    viewed = fresh_source(stack, "cons_viewed", rows=10, seed=1)
    with psycopg.connect(viewed, autocommit=True) as conn:
        conn.execute("alter table lead_tracking rename to lead_tracking_t")
        conn.execute("create view lead_tracking as select * from lead_tracking_t")
    with pytest.raises(ConsolidationError, match="lead_tracking in schema public is not a table") as refused:
        consolidate(viewed, target, tmp_path)
    assert refused.value.kind == "source_not_landing"
    # a source with a table of the wrong shape
    wrong = fresh_source(stack, "cons_wrong", rows=10, seed=1)
    with psycopg.connect(wrong, autocommit=True) as conn:
        conn.execute("alter table lead_journey drop column stage")
    with pytest.raises(ConsolidationError, match="lead_journey has an unexpected schema") as refused:
        consolidate(wrong, target, tmp_path)
    assert refused.value.kind == "source_not_landing"
    # ... or a column of a type the import cannot cast (JSON kept as free text)
    typed = fresh_source(stack, "cons_typed", rows=10, seed=1)
    with psycopg.connect(typed, autocommit=True) as conn:
        conn.execute("alter table landing_leads alter column metadata type text using 'utm_source=fb'")
    with pytest.raises(
        ConsolidationError, match="column metadata is text, expected json or jsonb"
    ) as refused:
        consolidate(typed, target, tmp_path)
    assert refused.value.kind == "source_not_landing"
    # a target without the migrations
    stack.create_database(scratch_db("cons_bare"), drop=True)
    with pytest.raises(ConsolidationError, match="lacks the onai-db migrations") as refused:
        consolidate(source, stack.database_url(scratch_db("cons_bare")), tmp_path)
    assert refused.value.kind == "target_lacks_migrations"
    # ... or pushed from an older checkout: the tables are there, the newest migrations are not
    behind = fresh_target(stack, "cons_behind")
    newest = local_migrations(Path(__file__).parents[1])[-1]
    with psycopg.connect(
        stack.database_url(scratch_db("cons_behind"), "supabase_admin"), autocommit=True
    ) as conn:
        conn.execute(
            "delete from supabase_migrations.schema_migrations where version = %s", (newest.version,)
        )
    with pytest.raises(
        ConsolidationError, match=f"lacks 1 of this checkout's .* {newest.filename}\\): run"
    ) as refused:
        consolidate(source, behind, tmp_path)
    assert refused.value.kind == "target_lacks_migrations"
    # which checkout: `local up` from another checkout with this one's onai-db installed
    # pushed that one's migrations, and the error gave no clue why it did not help
    checkout = Path(__file__).parents[1].resolve()
    assert f"(checkout {checkout}, where this onai-db runs from; the first: " in str(refused.value)
    with psycopg.connect(behind) as conn:
        assert conn.execute("select count(*) from private.consolidation_runs").fetchone() == (0,)
    # a history the login may not read is no reason to refuse (the tables were checked)
    with psycopg.connect(
        stack.database_url(scratch_db("cons_behind"), "supabase_admin"), autocommit=True
    ) as conn:
        conn.execute("alter schema supabase_migrations owner to supabase_admin")
        conn.execute("alter table supabase_migrations.schema_migrations owner to supabase_admin")
    with psycopg.connect(behind) as conn:
        assert conn.execute("select has_schema_privilege('supabase_migrations', 'usage')").fetchone() == (
            False,
        )
    assert consolidate(source, behind, tmp_path / "unreadable", dry_run=True).ok
    with psycopg.connect(target) as conn:
        assert conn.execute("select count(*) from private.consolidation_runs").fetchone() == (0,)
    # the CLI prints it as one line and exits non-zero
    out = subprocess.run(
        [sys.executable, "-c", "from onai_db.cli import main; main()", "consolidate", "--source", target,
         "--target", target, "--backup-dir", str(tmp_path / "x")],
        capture_output=True, text=True, cwd=Path(__file__).parents[1], check=False,
        env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "it is a Traffic database" in out.stderr


def test_cli_legacy_create_and_json_report(stack: LocalStack, tmp_path: Path) -> None:
    def cli(*args: str, terminal: bool = False) -> subprocess.CompletedProcess[str]:
        # TTY_COMPATIBLE=1: rich takes the captured stderr for a terminal (a person watching)
        env = {**os.environ, "TTY_COMPATIBLE": "1" if terminal else "0"}
        return subprocess.run(
            [sys.executable, "-c", "from onai_db.cli import main; main()", *args],
            capture_output=True, text=True, cwd=Path(__file__).parents[1], check=False, env=env,
        )  # fmt: skip

    created = cli(
        "legacy", "create", "--db", scratch_db("cons_cli_src"), "--rows", "60", "--seed", "2", "--json"
    )
    assert created.returncode == 0, created.stderr
    doc = json_document(created.stdout)
    assert sum(doc["rows"][t] for t in ("landing_leads", "lead_tracking", "unified_lead_tracking")) == 60
    target = fresh_target(stack, "cons_cli_target")
    args = ("consolidate", "--source", doc["url"], "--target", target, "--json", "--attribution")
    first = cli(*args, "--backup-dir", str(tmp_path / "1"))
    assert first.returncode == 0, first.stderr
    report = json_document(first.stdout)
    assert report["changed"] and report["unaccounted"] == 0
    # docs/consolidation.md lists every key of the document (found by the operator review)
    listed = _documented_json_keys()
    assert set(report) <= listed, f"not in docs/consolidation.md: {sorted(set(report) - listed)}"
    assert "backup" not in first.stderr, first.stderr  # no progress bars for a machine's log
    assert sum(r["leads"] for r in report["attribution"]) == report["leads_consolidated"]
    manifest = json.loads((tmp_path / "1" / "manifest.json").read_text())
    assert manifest["tables"]["lead_journey"]["rows"] == doc["rows"]["lead_journey"]
    assert len(manifest["tables"]["landing_leads"]["sha256"]) == 64
    # without --attribution the key is still there (one shape for scripts), and bars do not
    # reach a log without --json either (found by the operator review)
    second = cli(*args[:-1], "--backup-dir", str(tmp_path / "2"))
    again = json_document(second.stdout)
    assert second.returncode == 0 and not again["changed"] and again["resumed_from"] is None
    assert again["attribution"] is None, second.stdout
    plain_run = cli(*args[:-2], "--backup-dir", str(tmp_path / "5"))
    assert plain_run.returncode == 0 and "0 changes" in plain_run.stdout.lower(), plain_run.stdout
    assert "━" not in plain_run.stderr and "backup" not in plain_run.stderr, plain_run.stderr
    assert again["fingerprint"] == report["fingerprint"]
    # a dry run has no leads to attribute: it says so instead of an empty table
    dry = fresh_target(stack, "cons_cli_dry")
    dry_args = ("consolidate", "--source", doc["url"], "--target", dry, "--attribution", "--dry-run")
    as_json = cli(*dry_args, "--json", "--backup-dir", str(tmp_path / "3"), terminal=True)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["attribution"] is None, as_json.stdout
    # `--json > report.json` run by a person: the phases' progress still shows on the terminal
    assert all(phase in as_json.stderr for phase in ("backup", "verify")), as_json.stderr
    shown = cli(*dry_args, "--backup-dir", str(tmp_path / "4"))
    assert shown.returncode == 0 and "not shown for a dry run" in shown.stdout, shown.stdout


def _documented_json_keys() -> set[str]:
    """The keys docs/consolidation.md names in its paragraph on the ``--json`` document."""
    docs = (Path(__file__).parents[1] / "docs" / "consolidation.md").read_text()
    paragraph = docs[docs.index("`--json` prints the same as one document") :].split("\n\n")[0]
    return set(re.findall(r"`(\w+)(?:\[\])?`", paragraph))


def _blob(n: int) -> str:
    """n characters that do not compress (so the stored size is about n bytes)."""
    import uuid

    return "".join(uuid.uuid4().hex for _ in range(n // 32 + 1))[:n]


def test_rows_breaking_the_targets_checks_are_quarantined_and_the_run_completes(
    stack: LocalStack, tmp_path: Path
) -> None:
    """One out-of-range legacy value must not stop the migration: the row goes to the
    quarantine with its reason (every reason fits the quarantine's 200 characters)."""
    source = fresh_source(stack, "cons_checks", rows=30, seed=3)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into landing_leads (name, phone, click_count) values ('Negative', '+77015550101', -1)"
        )
        conn.execute(
            "insert into landing_leads (name, phone, metadata) values ('Huge', '+77015550102',"
            " jsonb_build_object('blob', %s::text))",
            (_blob(70_000),),
        )
        lead = conn.execute(  # a clean lead of its own, so its journey reasons are the rows' own
            "insert into landing_leads (name, phone) values ('Host', '+77015550104') returning id"
        ).fetchone()[0]
        conn.execute(
            "insert into lead_journey (lead_id, stage, source) values (%s, 'proftest_submitted', %s),"
            " (%s, %s, 'proftest')",
            (lead, "s" * 150, lead, "Not A Stage! " * 16),
        )
        good = conn.execute(
            "insert into lead_journey (lead_id, stage, source) values (%s, 'expresscourse_clicked', 'proftest')"
            " returning id",
            (lead,),
        ).fetchone()[0]
        conn.execute(
            "insert into lead_journey (lead_id, stage, metadata) values (%s, 'payment_started',"
            " jsonb_build_object('blob', %s::text))",
            (lead, _blob(70_000)),
        )
    target = fresh_target(stack, "cons_checks_t")
    report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:
        reasons = {r[0] for r in conn.execute("select reason from private.consolidation_quarantine")}
        imported = conn.execute(
            "select count(*) from public.traffic_lead_journey where event_key = %s",
            (f"legacy:lead_journey:{good}",),
        ).fetchone()
    assert {
        "click_count is negative",
        "metadata larger than 64 KiB",
        "source longer than 100 characters",
    } <= reasons
    assert any(
        r.startswith("stage 'Not A Stage!") and r.endswith("is not a valid stage name") for r in reasons
    )
    assert imported == (1,)  # the person's good journey rows still arrive


def test_quarantined_rows_leave_the_quarantine_when_a_later_run_imports_them(
    stack: LocalStack, tmp_path: Path
) -> None:
    import uuid

    source = fresh_source(stack, "cons_late", rows=20, seed=5)
    late = uuid.uuid4()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("insert into lead_journey (lead_id, stage) values (%s, 'proftest_submitted')", (late,))
    target = fresh_target(stack, "cons_late_t")
    assert consolidate(source, target, tmp_path / "1").ok
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into landing_leads (id, name, phone) values (%s, 'Late', '+77015550103')", (late,)
        )
    report = consolidate(source, target, tmp_path / "2")
    assert report.ok, report.to_json()
    assert report.changes["quarantine_released"] >= 1
    with psycopg.connect(target) as conn:
        left = conn.execute(
            "select count(*) from private.consolidation_quarantine as q join private.consolidation_raw_lead_journey"
            " as j on q.source_table = 'lead_journey' and q.legacy_id = j.id::text where j.lead_id = %s",
            (str(late),),
        ).fetchone()
        arrived = conn.execute(
            "select count(*) from public.traffic_lead_journey where legacy_source_table = 'lead_journey'"
            " and lead_id = (select lead_id from private.legacy_lead_map where legacy_id = %s)",
            (str(late),),
        ).fetchone()
    assert left == (0,) and arrived == (1,)


def test_a_row_left_in_the_quarantine_gets_the_reason_the_latest_run_finds(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Two journey rows with an unreadable stage, quarantined first because of their leads
    (one has no identifier, one is not in Landing). Once both leads are imported, the rows stay
    in the quarantine for their stage, and say so; the reasons used to stay as first written."""
    source = fresh_source(stack, "cons_requar", rows=20, seed=3)
    first_lead, second_lead = "bbbbbbbb-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("insert into landing_leads (id, created_at) values (%s, '2024-02-01')", (first_lead,))
        conn.execute(
            "insert into lead_journey (id, lead_id, stage, created_at) values"
            " (900001, %s, '???', '2024-02-02'), (900002, %s, '???', '2024-02-02')",
            (first_lead, second_lead),
        )
    target = fresh_target(stack, "cons_requar_t")
    assert consolidate(source, target, tmp_path / "1").ok

    def reasons() -> list[tuple[str, str]]:
        with psycopg.connect(target) as conn:
            return conn.execute(
                "select legacy_id, reason from private.consolidation_quarantine"
                " where source_table = 'lead_journey' and legacy_id in ('900001', '900002') order by 1"
            ).fetchall()

    assert [r for _, r in reasons()] == [
        f"its lead landing_leads {first_lead} is quarantined: no name, email or phone",
        f"lead {second_lead} not found in landing_leads",
    ]
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("update landing_leads set email = 'fixed@example.com' where id = %s", (first_lead,))
        conn.execute(
            "insert into landing_leads (id, email, created_at) values (%s, 'second@example.com', '2024-02-01')",
            (second_lead,),
        )
    report = consolidate(source, target, tmp_path / "2")
    assert report.ok, report.to_json()
    stage = "stage '???' is not a valid stage name"
    assert reasons() == [("900001", stage), ("900002", stage)]
    assert report.changes["quarantine_reasons_updated"] == 2, report.changes
    assert report.quarantine_reasons.get(f"lead_journey: {stage}", 0) >= 2, report.quarantine_reasons
    again = consolidate(source, target, tmp_path / "3")
    assert again.ok and not again.changed, again.changes


def test_a_placeholder_stage_is_quarantined_not_made_a_stage(stack: LocalStack, tmp_path: Path) -> None:
    """A Landing journey row whose stage a script left as '[object Object]', 'undefined' or an
    unexpanded macro became the stage 'object_object', 'undefined' or 'stage' once made
    snake_case (left in earlier notes): it counted on the dashboard as a stage of its own. Such
    a row is quarantined now, as a stage that is not one; its lead and its real stages arrive."""
    source = fresh_source(stack, "cons_placeholder_stage", rows=0, seed=1)
    lead = "cccccccc-0000-0000-0000-000000000001"
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into landing_leads (id, name, phone, created_at) values (%s, 'Stage', '+77015550621', '2024-02-01')",
            (lead,),
        )
        conn.execute(
            "insert into lead_journey (id, lead_id, stage, created_at) values"
            " (910001, %(l)s, '[object Object]', '2024-02-02'), (910002, %(l)s, 'undefined', '2024-02-02'),"
            " (910003, %(l)s, '{{stage}}', '2024-02-02'), (910004, %(l)s, 'NaN', '2024-02-02'),"
            " (910005, %(l)s, 'Proftest Submitted', '2024-02-02'), (910006, %(l)s, '\"undefined\";', '2024-02-02')",
            {"l": lead},
        )
    target = fresh_target(stack, "cons_placeholder_stage_t")
    report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:
        quarantined = conn.execute(
            "select legacy_id, reason from private.consolidation_quarantine where source_table = 'lead_journey'"
            " order by 1"
        ).fetchall()
        stages = conn.execute(
            "select l.stages, array_agg(j.stage order by j.stage) from public.traffic_leads as l"
            " join public.traffic_lead_journey as j on j.lead_id = l.id where l.phone_normalized = '+77015550621'"
            " group by l.stages"
        ).fetchall()
    assert quarantined == [
        ("910001", "stage '[object Object]' is not a valid stage name"),
        ("910002", "stage 'undefined' is not a valid stage name"),
        ("910003", "stage '{{stage}}' is not a valid stage name"),
        ("910004", "stage 'NaN' is not a valid stage name"),
        ("910006", """stage '"undefined";' is not a valid stage name"""),  # found by review
    ]
    assert stages == [(["lead_captured", "proftest_submitted"], ["lead_captured", "proftest_submitted"])]


@pytest.mark.parametrize("existing", ["created by the API", "imported by an earlier run"])
def test_rows_reaching_one_existing_lead_fill_it_in_their_time_order(
    stack: LocalStack, tmp_path: Path, existing: str
) -> None:
    """A lead in Traffic has a phone and an email. Three Landing rows: the phone alone, the
    email with a name (Bob), the phone with another name (Alice). Replayed one by one, Bob's row
    comes second and fills the name. The plan saw two persons that share the lead and filled it
    with the first person's rows, then the second's: Alice."""
    source = fresh_source(stack, "cons_fillorder", rows=0, seed=1)
    target = fresh_target(stack, "cons_fillorder_t")
    phone, email = "+77015550199", "bob.fill@example.com"
    if existing == "created by the API":
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(
                "select public.find_or_create_unified_lead(p_phone => %s, p_email => %s,"
                " p_occurred_at => '2026-01-01Z')",
                (phone, email),
            )
    else:
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute(
                "insert into landing_leads (id, phone, email, created_at) values"
                " ('dddddddd-0000-0000-0000-000000000001', %s, %s, '2023-12-01')",
                (phone, email),
            )
        assert consolidate(source, target, tmp_path / "0").ok
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into lead_tracking (id, phone, created_at) values (1, %s, '2024-01-01')", (phone,)
        )
        conn.execute(
            "insert into landing_leads (id, name, email, phone, metadata, created_at) values"
            """ ('dddddddd-0000-0000-0000-000000000002', 'Bob', %s, null, '{"k": "b"}', '2024-01-02'),"""
            """ ('dddddddd-0000-0000-0000-000000000003', 'Alice', null, %s, '{"k": "a"}', '2024-01-03')""",
            (email, phone),
        )
    report = consolidate(source, target, tmp_path / "1")
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:
        leads = conn.execute(
            "select name, metadata ->> 'k' from public.traffic_leads where merged_into is null"
        ).fetchall()
    assert leads == [("Bob", "b")]


def test_a_backup_directory_in_use_keeps_its_backup(stack: LocalStack, source: str, tmp_path: Path) -> None:
    """Re-running the same command must not overwrite (or truncate) the backup taken before
    the target was first touched: the next one goes to a subdirectory."""
    import hashlib

    target = fresh_target(stack, "cons_backup_t")
    first = consolidate(source, target, tmp_path)
    backup = tmp_path / "backup"
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in backup.glob("*.*")}
    assert "manifest.json" in before and len(before) == 6
    second = consolidate(source, target, tmp_path)
    assert first.ok and second.ok
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in backup.glob("*.*")}
    assert after == before
    subdirs = [p for p in backup.iterdir() if p.is_dir()]
    assert len(subdirs) == 1 and not subdirs[0].name.startswith(".incomplete")
    manifest = json.loads((subdirs[0] / "manifest.json").read_text())
    assert manifest["directory"] == str(subdirs[0])
    for info in manifest["tables"].values():
        data = (subdirs[0] / info["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) == info["bytes"]


def test_unfinished_backups_of_killed_runs_go_and_those_of_running_ones_stay(
    stack: LocalStack, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed mid-backup leaves ``.incomplete-<time>-<pid>``. The next run removes it,
    in its --backup-dir and, with the default directory (a new one per run), in the earlier
    default directories too. One whose process still runs belongs to another run writing
    its backup at this moment and stays (it was removed, so that run's backup failed)."""
    finished = subprocess.Popen(["true"])
    finished.wait()
    running = subprocess.Popen(["sleep", "120"])
    try:
        backup_dir = tmp_path / "backup"
        killed = backup_dir / f".incomplete-20260101T000000Z-{finished.pid}"
        writing = backup_dir / f".incomplete-20260101T000001Z-{running.pid}"
        for work in (killed, writing):
            work.mkdir(parents=True)
            (work / "landing_leads.csv").write_text("id\n1\n")
        target = fresh_target(stack, "cons_abandoned_t")
        assert consolidate(source, target, tmp_path).ok
        assert not killed.exists() and (writing / "landing_leads.csv").exists()

        monkeypatch.chdir(tmp_path)
        old_default = tmp_path / "backups" / "landing-20260101T000000Z"
        kept_default = tmp_path / "backups" / "landing-20260101T000001Z"
        (old_default / killed.name).mkdir(parents=True)
        (kept_default / writing.name).mkdir(parents=True)
        report = run_consolidation(ConsolidationOptions(source, target, batch_size=100))
        assert report.ok
        assert not old_default.exists() and (kept_default / writing.name).exists()
        assert [
            (p / "manifest.json").exists() for p in (tmp_path / "backups").iterdir() if p != kept_default
        ] == [True]  # this run's backup
    finally:
        running.kill()
        running.wait()


def test_leads_created_in_traffic_during_the_run_join_their_person(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Traffic stays live during a run. After the identity plan, find_or_create_unified_lead
    creates one lead with a person's only phone (the plan took it for new: the batch must not
    fail) and one with another person's second phone (the batch cannot claim it: the person
    must not stay split). Each person ends as one live lead."""

    source = fresh_source(stack, "cons_live", rows=20, seed=11)
    main, first, second, email = "+77015550201", "+77015550202", "+77015550203", "split@example.kz"
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("insert into landing_leads (name, phone) values ('Main', %s)", (main,))
        conn.execute(
            "insert into landing_leads (name, phone, email) values ('Split', %s, %s)", (first, email)
        )
        conn.execute(
            "insert into lead_tracking (name, phone, email) values ('Split', %s, %s)", (second, email)
        )
    target = fresh_target(stack, "cons_live_t")
    live_writes_before_the_first_batch(monkeypatch, target, (main, second))
    report = consolidate(source, target, tmp_path, jobs=1)
    assert report.ok, report.to_json()
    assert report.changes["persons_rejoined"] == 2
    with psycopg.connect(target) as conn:
        for phones in ((main,), (first, second)):
            live = conn.execute(
                "select count(distinct x.lead_id) from ("
                " select private.live_lead(i.lead_id) as lead_id from private.traffic_lead_identifiers as i"
                " where i.kind = 'phone' and i.value = any(%s)"
                " union all select private.live_lead(l.id) from public.traffic_leads as l"
                " where l.name = 'App' and l.phone = any(%s)) as x",
                (list(phones), list(phones)),
            ).fetchone()
            assert live == (1,), phones  # one live lead, and the concurrent lead is (or joined) it
        mapped = conn.execute(
            "select count(distinct private.live_lead(lead_id)) from private.legacy_lead_map m"
            " join private.consolidation_stage_leads s on s.src = m.source_table and s.legacy_id = m.legacy_id"
            " where s.email_n = %s",
            (email,),
        ).fetchone()
        assert mapped == (1,)
        # Main's row did not make its lead (the live writer did): merged, not migrated
        # (mutation review: the outcome was unpinned, and the report's counts with it)
        outcome = conn.execute(
            "select m.outcome from private.legacy_lead_map as m join private.consolidation_stage_leads as s"
            " on s.src = m.source_table and s.legacy_id = m.legacy_id where s.name = 'Main'"
        ).fetchall()
        assert outcome == [("merged",)]
    # and a second run finds nothing to do
    again = consolidate(source, target, tmp_path / "again")
    assert again.ok and not again.changed, again.changes


def test_ties_in_time_are_broken_by_the_legacy_id_as_a_number(stack: LocalStack, tmp_path: Path) -> None:
    source = fresh_source(stack, "cons_ties", rows=10, seed=13)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into lead_tracking (id, name, email, utm_source, created_at) values"
            " (10000000, 'Later id', 'tie@example.kz', 'second', '2025-03-01 10:00+00'),"
            " (9999999, 'Earlier id', 'tie@example.kz', 'first', '2025-03-01 10:00+00')"
        )
    target = fresh_target(stack, "cons_ties_t")
    assert consolidate(source, target, tmp_path).ok
    with psycopg.connect(target) as conn:
        row = conn.execute(
            "select l.name, l.first_utm_source, l.last_utm_source, m.outcome from public.traffic_leads as l"
            " join private.legacy_lead_map as m on m.lead_id = l.id and m.legacy_id = '9999999'"
            " where l.email_normalized = 'tie@example.kz'"
        ).fetchone()
    assert row == ("Earlier id", "first", "second", "migrated")


def test_a_phone_to_fill_taken_during_the_run_joins_the_leads(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person already in Traffic by email; Landing knows their phone too. After the plan,
    someone else's call creates a lead with that phone: filling the phone in would break the
    one-live-lead-per-phone index, so the two leads are merged first and the run completes."""

    source = fresh_source(stack, "cons_fill", rows=20, seed=17)
    phone, email = "+77015550301", "fill@example.kz"
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("insert into landing_leads (name, phone, email) values ('Fill', %s, %s)", (phone, email))
    target = fresh_target(stack, "cons_fill_t")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("select public.find_or_create_unified_lead(p_email => %s, p_name => 'Known')", (email,))
    live_writes_before_the_first_batch(monkeypatch, target, (phone,))
    report = consolidate(source, target, tmp_path, jobs=1)
    assert report.ok, report.to_json()
    assert report.changes["persons_rejoined"] >= 1
    with psycopg.connect(target) as conn:
        live = conn.execute(
            "select id, name, phone_normalized, email_normalized from public.traffic_leads"
            " where merged_into is null and (phone_normalized = %s or email_normalized = %s)",
            (phone, email),
        ).fetchall()
    assert len(live) == 1 and live[0][1:] == ("Known", phone, email)


def test_a_lead_written_while_a_batch_commits_is_joined_even_after_a_crash(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """find_or_create_unified_lead called with a person's second phone while the batch that
    claims it has not committed yet: the call waits on the batch's identifier, then creates a
    lead of its own beside the person's. The run then crashes; the re-run must still join the
    two (one live lead per person), as an uninterrupted run does."""
    import threading

    from onai_db.consolidate import apply

    source = fresh_source(stack, "cons_window", rows=30, seed=19)
    first, second, email = "+77015550401", "+77015550402", "window@example.kz"
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into landing_leads (name, phone, email, created_at) values ('Window', %s, %s, '2020-01-01')",
            (first, email),
        )
        conn.execute(
            "insert into lead_tracking (name, phone, email, created_at) values ('Window', %s, %s, '2020-01-02')",
            (second, email),
        )
    target = fresh_target(stack, "cons_window_t")
    original = apply.apply_batch
    calls: list[threading.Thread] = []

    def write_while_the_batch_is_open(conn: psycopg.Connection, run_id: int, batch: int) -> apply.BatchResult:
        if calls:  # the batch after the person's: the run dies here
            raise RuntimeError("simulated crash")
        result = original(conn, run_id, batch)
        claimed = conn.execute(
            "select count(*) from private.traffic_lead_identifiers where kind = 'phone' and value = %s",
            (second,),
        ).fetchone()
        if claimed == (1,):

            def call() -> None:
                with psycopg.connect(target, autocommit=True) as live:
                    live.execute(
                        "select public.find_or_create_unified_lead(p_phone => %s, p_name => 'App')", (second,)
                    )

            calls.append(threading.Thread(target=call))
            calls[0].start()
            time.sleep(1.5)  # the call now waits on this batch's uncommitted identifier
        return result

    monkeypatch.setattr(apply, "apply_batch", write_while_the_batch_is_open)
    with pytest.raises(RuntimeError, match="simulated crash"):
        consolidate(source, target, tmp_path, batch_size=10, jobs=1)
    assert calls, "the person's rows were in a batch before the last one"
    calls[0].join(timeout=30)
    with psycopg.connect(target) as conn:
        assert conn.execute(
            "select count(*) from public.traffic_leads where merged_into is null and name = 'App'"
        ).fetchone() == (1,), "the concurrent call created its own lead beside the person's"
    monkeypatch.setattr(apply, "apply_batch", original)
    report = consolidate(source, target, tmp_path / "resume", batch_size=10, jobs=1)
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:
        live = conn.execute(
            "select count(*) from public.traffic_leads where merged_into is null"
            " and (phone_normalized in (%s, %s) or email_normalized = %s)",
            (first, second, email),
        ).fetchone()
    assert live == (1,)


def test_values_the_preflight_accepts_never_stop_the_run(stack: LocalStack, tmp_path: Path) -> None:
    """A click count beyond integer (a bigint column, or one person's counts summed), a NUL
    escape in a json column: quarantined or imported, never a crash that every re-run repeats."""
    source = fresh_source(stack, "cons_values", rows=20, seed=6)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("alter table landing_leads alter column click_count type bigint")
        conn.execute("alter table lead_journey alter column metadata type json using metadata::json")
        # a text lead_id too long for a B-tree entry (2.7 kB)
        conn.execute("alter table lead_journey alter column lead_id type text")
        conn.execute("drop index lead_journey_lead_id_idx")  # Landing's own index would refuse it
        absurd = conn.execute(
            "insert into lead_journey (lead_id, stage) select string_agg(md5(i::text), ''), 'proftest_submitted'"
            " from generate_series(1, 400) as i returning id"
        ).fetchone()[0]
        conn.execute(
            "insert into landing_leads (name, phone, click_count) values ('Clicks', '+77015550201', 5000000000),"
            " ('Twice', '+77015550202', 2000000000), ('Twice', '8 701 555 02 02', 2000000000)"
        )
        host = conn.execute(
            "insert into landing_leads (name, phone) values ('Host', '+77015550203') returning id"
        ).fetchone()[0]
        nul = conn.execute(
            """insert into lead_journey (lead_id, stage, metadata) values (%s, 'proftest_submitted',"""
            """ '{"note": "a\\u0000b"}') returning id""",
            (host,),
        ).fetchone()[0]
        # times: none, a typo'd century, 'infinity' (imported, counted)
        conn.execute("alter table landing_leads alter column created_at drop not null")
        conn.execute("alter table lead_journey alter column created_at drop not null")
        undated = conn.execute(
            "insert into landing_leads (name, phone, created_at) values ('Undated', '+77015550204', null),"
            " ('Old', '+77015550205', '1925-05-01') returning id"
        ).fetchone()[0]
        conn.execute(
            "insert into lead_journey (lead_id, stage, created_at) values (%s, 'proftest_submitted', 'infinity'),"
            " (%s, 'expresscourse_clicked', null)",
            (host, host),
        )
    target = fresh_target(stack, "cons_values_t")
    report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    assert report.data_quality["rows_without_time_dated_1970"] == 2
    assert report.data_quality["implausible_times_kept"] == 2
    with psycopg.connect(target) as conn:
        assert conn.execute(
            "select l.created_at from public.traffic_leads as l join private.legacy_lead_map as m on m.lead_id = l.id"
            " where m.source_table = 'landing_leads' and m.legacy_id = %s",
            (str(undated),),
        ).fetchone() == (datetime(1970, 1, 1, tzinfo=UTC),)
    with psycopg.connect(target) as conn:
        reasons = {r[0] for r in conn.execute("select reason from private.consolidation_quarantine")}
        twice = conn.execute(
            "select click_count from public.traffic_leads where phone_normalized = '+77015550202'"
        ).fetchone()
        note = conn.execute(
            "select metadata ->> 'note' from public.traffic_lead_journey where event_key = %s",
            (f"legacy:lead_journey:{nul}",),
        ).fetchone()
    assert "click_count larger than 2147483647" in reasons
    assert twice == (2147483647,)  # a count saturates
    with psycopg.connect(target) as conn:
        assert conn.execute(
            "select count(*) from private.consolidation_quarantine where source_table = 'lead_journey' and legacy_id = %s",
            (str(absurd),),
        ).fetchone() == (1,)
    assert note == ("a\ufffdb",)


def test_the_targets_session_defaults_do_not_change_what_is_imported(
    stack: LocalStack, source: str, consolidated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's PGCLIENTENCODING, or a Traffic database whose default client encoding is
    not UTF8 (or whose strings are not standard conforming), must not garble or stop the run:
    the result equals the fixture's run with default settings."""
    target = fresh_target(stack, "cons_latin1")
    with stack.admin_connect() as conn:
        conn.execute(f"alter database {scratch_db('cons_latin1')} set client_encoding = 'LATIN1'")
        conn.execute(f"alter database {scratch_db('cons_latin1')} set standard_conforming_strings = off")
    with monkeypatch.context() as env:
        env.setenv("PGCLIENTENCODING", "LATIN1")
        report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    with psycopg.connect(target, client_encoding="UTF8") as conn, psycopg.connect(consolidated) as expected:
        assert snapshot(conn) == snapshot(expected)
        assert (
            conn.execute("select count(*) from public.traffic_leads where name ~ '[А-Яа-яӘәҚқ]'").fetchone()
            == expected.execute(
                "select count(*) from public.traffic_leads where name ~ '[А-Яа-яӘәҚқ]'"
            ).fetchone()
            != (0,)
        )


def test_a_target_that_cannot_be_written_is_refused_before_the_backup(
    stack: LocalStack, source: str, tmp_path: Path
) -> None:
    """A read-only Traffic, or a login that may only read it: one line in the preflight,
    no backup taken, nothing written (it used to be a "backup failed" after a full backup)."""
    target = fresh_target(stack, "cons_ro")
    with stack.admin_connect() as conn:
        conn.execute(f"alter database {scratch_db('cons_ro')} set default_transaction_read_only = on")
    with pytest.raises(ConsolidationError, match="the target is read-only") as refused:
        consolidate(source, target, tmp_path / "ro")
    assert refused.value.kind == "target_not_writable" and "nothing was written" in str(refused.value)
    assert not list(tmp_path.rglob("*.csv"))
    role = f"cons_reader_{os.getpid()}"
    with stack.admin_connect() as conn:
        conn.execute(f"alter database {scratch_db('cons_ro')} reset default_transaction_read_only")
        conn.execute(f"create role {role} login password 'reader'")
    try:
        with psycopg.connect(
            stack.database_url(scratch_db("cons_ro"), "supabase_admin"), autocommit=True
        ) as conn:
            conn.execute(f"grant usage on schema public, private to {role}")
            conn.execute(f"grant select on all tables in schema public, private to {role}")
        reader = target.replace("postgres:postgres@", f"{role}:reader@")
        with pytest.raises(
            ConsolidationError, match=r"the target login cannot write public\.traffic_leads"
        ) as refused:
            consolidate(source, reader, tmp_path / "reader")
        assert refused.value.kind == "target_not_writable"
        # without usage of schema private: the same line, not "permission denied for schema private"
        with psycopg.connect(
            stack.database_url(scratch_db("cons_ro"), "supabase_admin"), autocommit=True
        ) as conn:
            conn.execute(f"revoke usage on schema private from {role}")
        with pytest.raises(ConsolidationError, match="the target login cannot write") as refused:
            consolidate(source, reader, tmp_path / "reader")
        assert not list(tmp_path.rglob("*.csv"))
        with psycopg.connect(target) as conn:
            assert conn.execute("select count(*) from private.consolidation_runs").fetchone() == (0,)
    finally:
        with psycopg.connect(
            stack.database_url(scratch_db("cons_ro"), "supabase_admin"), autocommit=True
        ) as conn:
            conn.execute(f"drop owned by {role}")
        with stack.admin_connect() as conn:
            conn.execute(f"drop role {role}")


def test_a_source_schema_the_login_cannot_use_or_a_materialized_view_is_named(
    stack: LocalStack, tmp_path: Path
) -> None:
    source = fresh_source(stack, "cons_matview", rows=10, seed=2)
    target = fresh_target(stack, "cons_matview_t")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("alter table lead_tracking rename to lead_tracking_t")
        conn.execute("create materialized view lead_tracking as select * from lead_tracking_t")
    with pytest.raises(ConsolidationError, match="lead_tracking in schema public is not a table") as refused:
        consolidate(source, target, tmp_path)
    assert refused.value.kind == "source_not_landing"
    role = f"cons_nousage_{os.getpid()}"
    noschema = fresh_source(stack, "cons_nousage", rows=10, seed=2)
    with stack.admin_connect() as conn:
        conn.execute(f"create role {role} login password 'reader'")
    try:
        with psycopg.connect(noschema, autocommit=True) as conn:
            conn.execute("revoke usage on schema public from public")
            conn.execute(f"grant select on all tables in schema public to {role}")
        url = noschema.replace("postgres:postgres@", f"{role}:reader@")
        with pytest.raises(ConsolidationError, match="the source login cannot read table") as refused:
            consolidate(url, target, tmp_path)
        assert refused.value.kind == "source_not_readable" and "no usage of schema public" in str(
            refused.value
        )
    finally:
        with psycopg.connect(
            stack.database_url(scratch_db("cons_nousage"), "supabase_admin"), autocommit=True
        ) as conn:
            conn.execute(f"drop owned by {role}")
        with stack.admin_connect() as conn:
            conn.execute(f"drop role {role}")


def test_duplicate_legacy_ids_are_one_clear_error(stack: LocalStack, tmp_path: Path) -> None:
    source = fresh_source(stack, "cons_dupids", rows=10, seed=7)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("alter table lead_journey drop constraint lead_journey_pkey")
        conn.execute(
            "insert into lead_journey (id, lead_id, stage) select id, lead_id, stage from lead_journey limit 1"
        )
        # a unique index that failed to build (left invalid) does not make the ids unique
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("create unique index concurrently lead_journey_id_key on lead_journey (id)")
    target = fresh_target(stack, "cons_dupids_t")
    with pytest.raises(ConsolidationError, match="lead_journey has duplicate ids") as refused:
        consolidate(source, target, tmp_path)
    assert refused.value.kind == "source_ids" and "nothing was written" in str(refused.value)
    with psycopg.connect(target) as conn:
        assert conn.execute("select count(*) from public.traffic_leads").fetchone() == (0,)
        # refused in the preflight: no run was started (its row would make the next run "resume" it)
        assert conn.execute("select count(*) from private.consolidation_runs").fetchone() == (0,)
    assert not list(tmp_path.rglob("*.csv"))


def test_an_unwritable_backup_directory_is_one_clear_error(
    stack: LocalStack, source: str, tmp_path: Path
) -> None:
    target = fresh_target(stack, "cons_backup_bad")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for where in (blocker, blocker / "sub"):
        with pytest.raises(ConsolidationError, match="cannot write the backup") as refused:
            run_consolidation(ConsolidationOptions(source, target, backup_dir=where))
        assert refused.value.kind == "backup_not_writable"
        if where == blocker:  # it said "File exists" (found by the operator review)
            assert f"{blocker}: it is a file, not a directory" in str(refused.value)
    with psycopg.connect(target) as conn:
        assert conn.execute("select count(*) from private.consolidation_runs").fetchone() == (0,)
    # the CLI says so in one line, before any progress bar
    out = subprocess.run(
        [sys.executable, "-c", "from onai_db.cli import main; main()", "consolidate", "--source", source,
         "--target", target, "--backup-dir", str(blocker / "sub")],
        capture_output=True, text=True, cwd=Path(__file__).parents[1], check=False,
        env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "cannot write the backup" in out.stderr, out.stderr


def test_target_rows_count_live_leads_and_a_changed_imported_row_settles(
    stack: LocalStack, tmp_path: Path
) -> None:
    source = fresh_source(stack, "cons_settle", rows=0, seed=8)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into landing_leads (name, phone, email) values ('Phone', '+77015550301', null),"
            " ('Mail', null, 'settle@example.kz')"
        )
    target = fresh_target(stack, "cons_settle_t")
    assert consolidate(source, target, tmp_path / "1").ok
    with psycopg.connect(source, autocommit=True) as conn:  # a later row ties the two together
        conn.execute(
            "insert into lead_tracking (name, phone, email) values ('Both', '8 701 555 03 01', 'SETTLE@example.kz')"
        )
        conn.execute("update landing_leads set name = repeat('x', 300) where name = 'Phone'")
    report = consolidate(source, target, tmp_path / "2")
    assert report.ok and report.leads_consolidated == 1, report.to_json()
    landing = next(t for t in report.tables if t.table == "landing_leads")
    assert landing.target_rows == 1  # both rows ended in one live lead
    again = consolidate(source, target, tmp_path / "3")
    assert not again.changed, again.changes  # the changed imported row is not re-quarantined each run


def test_a_merge_group_follows_leads_merged_meanwhile(stack: LocalStack) -> None:
    """A batch reads the live leads holding a person's identifiers, then merges them; a live
    call may merge those leads in between. The group stands for their live leads (it
    returned NULL and the run failed with 23502); leads deleted meanwhile give 40001, which
    the runner retries."""
    target = fresh_target(stack, "cons_mgroup_t")
    rpc = "select lead_id from public.find_or_create_unified_lead(p_phone => %s, p_email => %s)"
    with psycopg.connect(target, autocommit=True) as conn:
        x = conn.execute(rpc, ("+77015550401", None)).fetchone()[0]
        y = conn.execute(rpc, (None, "group@example.kz")).fetchone()[0]
        z = conn.execute(rpc, ("+77015550402", None)).fetchone()[0]
        assert conn.execute(rpc, ("+77015550401", "group@example.kz")).fetchone()[0] == x  # y into x
        group = "select private.consolidation_merge_group(%s::uuid[], '{}'::jsonb)"
        assert conn.execute(group, ([y],)).fetchone()[0] == x
        assert conn.execute(group, ([z, y],)).fetchone()[0] == x
        assert conn.execute("select private.live_lead(%s)", (z,)).fetchone()[0] == x
        gone = conn.execute(
            "insert into public.traffic_leads (name) values ('Gone') returning id"
        ).fetchone()[0]
        conn.execute("delete from public.traffic_leads where id = %s", (gone,))
        with pytest.raises(psycopg.errors.SerializationFailure, match="none of the leads to merge exists"):
            conn.execute(group, ([gone],))


def test_a_legacy_row_tying_two_leads_without_stages_is_consolidated(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Two leads written straight into Traffic (no stages) and a Landing row with both their
    phone and email: the merge gave NULL stages (23502) and the run failed."""
    source = fresh_source(stack, "cons_nostage", rows=0, seed=3)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into landing_leads (name, phone, email) values ('Both', '+77015550411', 'nostage@example.kz')"
        )
    target = fresh_target(stack, "cons_nostage_t")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("insert into public.traffic_leads (name, phone) values ('Phone', '+77015550411')")
        conn.execute("insert into public.traffic_leads (name, email) values ('Mail', 'nostage@example.kz')")
    report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:
        live = conn.execute(
            "select name, phone_normalized, email_normalized, stages from public.traffic_leads where merged_into is null"
        ).fetchall()
    assert live == [("Phone", "+77015550411", "nostage@example.kz", ["lead_captured"])]


def test_rows_changed_or_deleted_in_landing_after_their_import_are_counted_per_table(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Rows are imported once, never re-applied: a later run says how many imported rows
    Landing changed or deleted since (kept as imported), per table, and changes nothing."""
    source = fresh_source(stack, "cons_changed", rows=30, seed=19)
    with psycopg.connect(source, autocommit=True) as conn:
        notes = [
            r[0]
            for r in conn.execute(
                "insert into scheduled_notifications (id, lead_id, channel, recipient, template, payload,"
                " scheduled_for, status) select 900000 + row_number() over (order by id), id, 'email',"
                " 'n@example.com', 'reminder', '{}', now() + interval '1 day', 'pending'"
                " from landing_leads where phone is not null order by id limit 3 returning id"
            ).fetchall()
        ]
    target = fresh_target(stack, "cons_changed_t")
    first = consolidate(source, target, tmp_path / "1")
    assert first.ok
    assert [
        (t.table, t.changed_in_landing, t.deleted_in_landing)
        for t in first.tables
        if t.changed_in_landing or t.deleted_in_landing
    ] == []
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "update landing_leads set name = name || ' (edited)' where id = (select id from landing_leads order by id limit 1)"
        )
        conn.execute(
            "update lead_tracking set utm_campaign = 'edited' where id in (select id from lead_tracking order by id limit 2)"
        )
        conn.execute("update unified_lead_tracking set created_at = created_at + interval '1 second'"
                     " where id = (select id from unified_lead_tracking order by id limit 1)")  # fmt: skip
        conn.execute(
            "update lead_journey set stage = stage || '_edited' where id = (select id from lead_journey order by id limit 1)"
        )
        conn.execute(
            "delete from lead_journey where id = (select id from lead_journey order by id desc limit 1)"
        )
        conn.execute(
            "delete from scheduled_notifications where id = (select id from scheduled_notifications order by id limit 1)"
        )
        # a notification given another recipient and template, one moved to another lead (counted),
        # one whose delivery state changed (followed, as Landing goes on sending: not counted)
        conn.execute(
            "update scheduled_notifications set recipient = 'changed@example.com', template = 'other' where id = %s",
            (notes[0],),
        )
        conn.execute(
            "update scheduled_notifications set lead_id = (select l.id from landing_leads as l where l.phone"
            " is not null and l.id is distinct from scheduled_notifications.lead_id order by l.id limit 1)"
            " where id = %s",
            (notes[1],),
        )
        conn.execute("update scheduled_notifications set status = 'cancelled' where id = %s", (notes[2],))
    again = consolidate(source, target, tmp_path / "2")
    assert again.ok, again.changes
    assert {k: v for k, v in again.changes.items() if v} == {"notifications_updated": 1}, again.changes
    counts = {t.table: (t.changed_in_landing, t.deleted_in_landing) for t in again.tables}
    assert counts == {
        "landing_leads": (1, 0),
        "lead_tracking": (2, 0),
        "unified_lead_tracking": (1, 0),
        "lead_journey": (1, 1),
        "scheduled_notifications": (2, 1),
    }, counts
    console = Console(record=True, width=200)
    render_report(console, again)
    text = console.export_text()
    assert re.search(
        r"lead_tracking: imported earlier, changed in Landing since \(kept as imported\) +│ 2 ", text
    )
    assert re.search(
        r"lead_journey: imported earlier, deleted in Landing since \(kept in Traffic\) +│ 1 ", text
    )


@pytest.mark.parametrize(
    "error",
    [psycopg.errors.DeadlockDetected, psycopg.errors.UniqueViolation],
    ids=["deadlock", "a live writer took a phone again (23505)"],
)
def test_a_batch_that_loses_a_deadlock_is_applied_again(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[psycopg.Error]
) -> None:
    from onai_db.consolidate import apply

    source = fresh_source(stack, "cons_retry", rows=60, seed=9)
    target = fresh_target(stack, "cons_retry_t")
    real = apply.apply_batch
    calls: list[int] = []

    def flaky(conn: psycopg.Connection, run_id: int, batch: int) -> apply.BatchResult:
        calls.append(batch)
        result = real(conn, run_id, batch)
        if batch == 1 and calls.count(1) == 1:  # after the batch's writes, before its commit
            raise error("lost to a live writer (injected)")
        return result

    monkeypatch.setattr(apply, "apply_batch", flaky)
    report = consolidate(source, target, tmp_path, batch_size=20)
    assert report.ok, report.to_json()
    assert calls.count(1) == 2
    monkeypatch.setattr(apply, "apply_batch", real)
    assert not consolidate(source, target, tmp_path / "again", batch_size=20).changed


def test_a_journey_phase_that_loses_a_deadlock_is_run_again(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journey phase locks every live lead it writes rows for, so a live writer can make it
    lose a deadlock: it is rolled back and run again, and counts its changes once."""
    from onai_db.consolidate import apply

    source = fresh_source(stack, "cons_jretry", rows=60, seed=9)
    clean = consolidate(source, fresh_target(stack, "cons_jretry_c"), tmp_path / "clean", batch_size=20)
    target = fresh_target(stack, "cons_jretry_t")
    real = apply.finish_journey
    calls: list[int] = []

    def flaky(conn: psycopg.Connection, run_id: int) -> tuple[int, int, int]:
        calls.append(run_id)
        result = real(conn, run_id)
        if len(calls) == 1:  # after the phase's first writes, before its commit
            raise psycopg.errors.DeadlockDetected("lost to a live writer (injected)")
        return result

    monkeypatch.setattr(apply, "finish_journey", flaky)
    report = consolidate(source, target, tmp_path / "1", batch_size=20)
    assert report.ok, report.to_json()
    assert len(calls) == 2
    assert report.changes == clean.changes
    monkeypatch.setattr(apply, "finish_journey", real)
    assert not consolidate(source, target, tmp_path / "again", batch_size=20).changed


@pytest.mark.parametrize("phase", ["leads", "journey"])
def test_a_dry_run_that_loses_a_deadlock_stops_with_nothing_written(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    """A dry run's batches share one transaction that is rolled back at its end: a retry after
    a lost deadlock would roll back the batches before it too, and report a part as the whole.
    It stops at once with one line that says nothing was written, not "resume" (mutation
    review: neither was pinned)."""
    from onai_db.consolidate import apply

    source = fresh_source(stack, f"cons_dry_{phase}", rows=60, seed=9)
    target = fresh_target(stack, f"cons_dry_{phase}_t")
    name = "apply_batch" if phase == "leads" else "finish_journey"
    real = getattr(apply, name)
    calls: list[object] = []

    def flaky(*args: object) -> object:
        calls.append(args)
        result = real(*args)
        if len(calls) == 2 or phase == "journey":
            raise psycopg.errors.DeadlockDetected("lost to a live writer (injected)")
        return result

    monkeypatch.setattr(apply, name, flaky)
    with pytest.raises(ConsolidationError) as err:
        consolidate(source, target, tmp_path, batch_size=20, dry_run=True)
    assert len(calls) == (2 if phase == "leads" else 1)
    assert re.fullmatch(
        rf"{phase} failed: .*\(SQLSTATE 40P01\); nothing was written to the target;"
        " a dry run does not retry a conflict with a live writer: run it again",
        str(err.value),
    ), err.value
    with psycopg.connect(target) as conn:
        assert conn.execute("select count(*) from public.traffic_leads").fetchone() == (0,)
        assert conn.execute("select count(*) from private.consolidation_runs").fetchone() == (0,)


def test_a_source_with_a_day_first_datestyle_keeps_its_dates(stack: LocalStack, tmp_path: Path) -> None:
    """Landing's text is read under ISO DateStyle: with its own 'SQL, DMY' the backup held
    04/03/2025, which the target read as 3 April (and 30/01/2025 stopped the run)."""
    source = fresh_source(stack, "cons_dmy", rows=10, seed=10)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(f"alter database {scratch_db('cons_dmy')} set datestyle = 'SQL, DMY'")
        conn.execute("update landing_leads set created_at = '2025-03-04 10:00+00'")
        conn.execute("update lead_journey set created_at = '2025-01-30 08:00'")
    target = fresh_target(stack, "cons_dmy_t")
    report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:
        days = conn.execute(
            "select distinct created_at at time zone 'UTC' from public.traffic_leads where legacy_source_table = 'landing_leads'"
        ).fetchall()
        assert [d.isoformat() for (d,) in days] == ["2025-03-04T10:00:00"]
        journey = conn.execute(
            "select distinct (occurred_at at time zone 'UTC')::date from public.traffic_lead_journey"
            " where legacy_source_table = 'lead_journey'"
        ).fetchall()
        assert [d.isoformat() for (d,) in journey] == ["2025-01-30"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "alter table lead_tracking alter column id drop not null; insert into lead_tracking (id, name) values (null, 'No id')",
            r"lead_tracking has 1 row\(s\) without an id \(NULL or empty\)",
        ),
        (
            "alter table lead_tracking alter column id type text; insert into lead_tracking (id, name) values (repeat('x', 120), 'Long')",
            r"lead_tracking has 1 row\(s\) with an id longer than 100 characters",
        ),
        (
            "alter table lead_tracking alter column id drop default, alter column id type text;"
            " insert into lead_tracking (id, name) values ('', 'Empty id')",
            r"lead_tracking has 1 row\(s\) without an id \(NULL or empty\)",
        ),
    ],
    ids=["null id", "long id", "empty id"],
)
def test_rows_without_a_usable_id_are_one_clear_error_before_anything_is_written(
    stack: LocalStack, tmp_path: Path, change: str, message: str
) -> None:
    source = fresh_source(stack, "cons_ids", rows=10, seed=11)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("alter table lead_tracking drop constraint if exists lead_tracking_pkey")
        for stmt in change.split("; "):
            conn.execute(stmt)  # type: ignore[arg-type]
    target = fresh_target(stack, "cons_ids_t")
    with pytest.raises(ConsolidationError, match=message) as refused:
        consolidate(source, target, tmp_path)
    assert refused.value.kind == "source_ids"
    with psycopg.connect(target) as conn:
        assert conn.execute("select count(*) from private.consolidation_runs").fetchone() == (0,)


def test_overlong_sources_and_stages_are_quarantined_not_a_crash(stack: LocalStack, tmp_path: Path) -> None:
    """A random 6 KB source or stage broke the btree index of the value maps before the
    row checks ran, on every re-run."""
    source = fresh_source(stack, "cons_long", rows=10, seed=12)
    huge = "".join(hashlib.md5(str(i).encode()).hexdigest() for i in range(200))
    with psycopg.connect(source, autocommit=True) as conn:
        host = conn.execute(
            "insert into landing_leads (name, phone) values ('Host', '+77015550301') returning id"
        ).fetchone()[0]
        conn.execute(
            "insert into landing_leads (name, phone, source) values ('Long', '+77015550302', %s)", (huge,)
        )
        conn.execute("insert into lead_journey (lead_id, stage, source) values (%s, %s, 'x')", (host, huge))
    target = fresh_target(stack, "cons_long_t")
    report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:
        reasons = sorted(
            r[0][:40] for r in conn.execute("select reason from private.consolidation_quarantine")
        )
        assert "source longer than 100 characters" in reasons
        assert any(r.startswith("stage '") for r in reasons), reasons


def test_a_literal_backslash_u0000_in_json_text_is_kept(stack: LocalStack, tmp_path: Path) -> None:
    """Only the \\u0000 escape (which jsonb cannot hold) is replaced, not the text \\u0000
    after an escaped backslash."""
    source = fresh_source(stack, "cons_bsl", rows=5, seed=13)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into landing_leads (name, phone, metadata) values ('Slash', '+77015550401', %s::jsonb)",
            ('{"note": "a\\\\u0000b"}',),
        )
    target = fresh_target(stack, "cons_bsl_t")
    assert consolidate(source, target, tmp_path).ok
    with psycopg.connect(target) as conn:
        note = conn.execute(
            "select metadata ->> 'note' from public.traffic_leads where phone_normalized = '+77015550401'"
        ).fetchone()
        assert note == ("a\\u0000b",)


def test_a_journey_row_relinked_in_landing_after_its_import_is_reported_not_broken(
    stack: LocalStack, tmp_path: Path
) -> None:
    source = fresh_source(stack, "cons_relink", rows=30, seed=14)
    target = fresh_target(stack, "cons_relink_t")
    assert consolidate(source, target, tmp_path).ok
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "update lead_journey set lead_id = (select id from landing_leads order by id desc limit 1)"
            " where id = (select j.id from lead_journey j join landing_leads l on l.id = j.lead_id"
            " where j.lead_id <> (select id from landing_leads order by id desc limit 1) order by j.id limit 1)"
        )
    again = consolidate(source, target, tmp_path / "again")
    assert again.ok and not again.changed, again.to_json()
    assert (again.journey_links_broken, again.journey_links_changed_in_landing) == (0, 1)
    # ... to a lead that is new in Landing: the new lead is imported, the row keeps its link
    with psycopg.connect(source, autocommit=True) as conn:
        moved = conn.execute(
            "with n as (insert into landing_leads (id, name, phone, created_at) values"
            " ('33333333-3333-3333-3333-333333333333', 'New Lead', '+77013334455', now()) returning id)"
            " update lead_journey set lead_id = (select id from n)"
            " where id = (select max(j.id) from lead_journey j join landing_leads l on l.id = j.lead_id)"
            " returning id"
        ).fetchone()
    assert moved is not None
    third = consolidate(source, target, tmp_path / "third")
    assert third.ok and third.changes["leads_created"] == 1 and third.changes["journey_rows"] == 1, (
        third.to_json()
    )
    assert (third.journey_links_broken, third.journey_links_changed_in_landing) == (0, 2)
    with psycopg.connect(target) as conn:
        stages = conn.execute(
            "select l.stages from public.traffic_leads as l join private.legacy_lead_map as m on m.lead_id = l.id"
            " where m.source_table = 'landing_leads' and m.legacy_id = '33333333-3333-3333-3333-333333333333'"
        ).fetchone()
    assert stages == (["lead_captured"],)  # not the stage of a row it does not hold
    last = consolidate(source, target, tmp_path / "last")
    assert last.ok and not last.changed, last.to_json()


def test_quarantined_rows_deleted_in_landing_are_counted_apart_so_the_reasons_add_up(
    stack: LocalStack, tmp_path: Path
) -> None:
    source = fresh_source(stack, "cons_qdel", rows=200, seed=21)
    target = fresh_target(stack, "cons_qdel_t")
    first = consolidate(source, target, tmp_path)
    journey = next(t for t in first.tables if t.table == "lead_journey")
    assert first.ok and journey.quarantined >= 3, first.to_json()
    with psycopg.connect(target) as conn:
        gone = [
            legacy_id for (legacy_id,) in conn.execute(
                "select legacy_id from private.consolidation_quarantine where source_table = 'lead_journey'"
                " order by legacy_id limit 3"
            ).fetchall()
        ]  # fmt: skip
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("delete from lead_journey where id::text = any(%s)", (gone,))
    again = consolidate(source, target, tmp_path / "again")
    checks = {t.table: t for t in again.tables}
    assert again.ok and not again.changed, again.to_json()
    assert checks["lead_journey"].quarantined == journey.quarantined - 3
    assert checks["lead_journey"].quarantined_deleted_in_landing == 3
    for table, check in checks.items():  # each table's reasons add up to its quarantined rows
        reasons = sum(n for reason, n in again.quarantine_reasons.items() if reason.startswith(f"{table}: "))
        assert reasons == check.quarantined, (table, again.quarantine_reasons)
    with psycopg.connect(target) as conn:  # nothing is taken out of the quarantine
        kept = conn.execute(
            "select count(*) from private.consolidation_quarantine where legacy_id = any(%s)", (gone,)
        ).fetchone()
    assert kept == (3,)


def test_notifications_sent_by_landing_after_their_import_are_no_longer_pending(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Landing sends until the switch: a re-run brings the delivery state of imported
    notifications up to date, so the operator's list of pending ones holds no sent message."""
    source = fresh_source(stack, "cons_sent", rows=200, seed=22)
    pending = (
        "select id from scheduled_notifications where lead_id in (select id from landing_leads)"
        " order by id limit 5"
    )
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            f"update scheduled_notifications set status = 'pending', sent_at = null,"
            f" scheduled_for = now() + interval '2 days' where id in ({pending})"
        )
    target = fresh_target(stack, "cons_sent_t")
    first = consolidate(source, target, tmp_path)
    assert first.ok and first.notifications_pending >= 5, first.to_json()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            f"update scheduled_notifications set status = 'sent', sent_at = now() where id in ({pending})"
        )
    again = consolidate(source, target, tmp_path / "again")
    assert again.ok and again.changes["notifications_updated"] == 5, again.changes
    assert again.notifications_pending == first.notifications_pending - 5
    with psycopg.connect(target) as conn:
        sent = conn.execute(
            "select count(*) from private.legacy_scheduled_notifications where status = 'sent'"
            " and sent_at is not null and scheduled_for > now()"
        ).fetchone()
    assert sent == (5,)
    last = consolidate(source, target, tmp_path / "last")
    assert last.ok and not last.changed, last.changes


def test_json_values_jsonb_cannot_hold_are_kept_as_text_and_counted(
    stack: LocalStack, tmp_path: Path
) -> None:
    """A json column accepts a lone surrogate escape and numbers beyond numeric's range;
    jsonb refuses them. Such a value is imported as {"legacy_json_text": <the text>} and
    counted, the run goes on; valid values of the same column (a surrogate pair, an
    exponent that fits) are imported as json."""
    source = fresh_source(stack, "cons_badjson", rows=5, seed=15)
    with psycopg.connect(source, autocommit=True) as conn:
        for table, column in (("lead_journey", "metadata"), ("landing_leads", "metadata")):
            conn.execute(f"alter table {table} alter column {column} type json using {column}::json")
        host = conn.execute(
            "insert into landing_leads (name, phone, metadata) values ('Bad json', '+77015550501',"
            """ '{"a": 1e1000000}') returning id"""
        ).fetchone()[0]
        journey = [
            conn.execute(
                "insert into lead_journey (lead_id, stage, metadata) values (%s, 'proftest_submitted', %s)"
                " returning id",
                (host, text),
            ).fetchone()[0]
            for text in (
                '{"a": "\\ud800"}',
                '{"a": 0.' + "0" * 17000 + "1}",
                '{"a": "\\ud83d\\ude00", "b": 1e99999}',
            )
        ]
    target = fresh_target(stack, "cons_badjson_t")
    report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    assert report.data_quality["json_values_kept_as_text"] == 3
    with psycopg.connect(target) as conn:
        lead = conn.execute(
            "select metadata ->> 'legacy_json_text' from public.traffic_leads where phone_normalized = '+77015550501'"
        ).fetchone()
        rows = dict(
            conn.execute(
                "select event_key, jsonb_strip_nulls(jsonb_build_object('kept', metadata -> 'legacy_json_text', 'a', metadata -> 'a',"
                " 'b', (metadata -> 'b')::text)) from public.traffic_lead_journey where event_key = any(%s)",
                ([f"legacy:lead_journey:{i}" for i in journey],),
            ).fetchall()
        )
    assert lead == ('{"a": 1e1000000}',)
    assert rows[f"legacy:lead_journey:{journey[0]}"] == {"kept": '{"a": "\\ud800"}'}
    assert rows[f"legacy:lead_journey:{journey[1]}"]["kept"].endswith("01}")
    assert rows[f"legacy:lead_journey:{journey[2]}"] == {"a": "\U0001f600", "b": "1" + "0" * 99999}
    again = consolidate(source, target, tmp_path / "again")
    assert again.ok and not again.changed, again.to_json()


def test_landing_text_in_the_report_and_json_numeric_cannot_hold(stack: LocalStack, tmp_path: Path) -> None:
    """A quarantine reason quotes Landing's stage: '[/]' failed the report of a completed run
    (found by review); a column's name with an ESC
    reached the terminal. A json value in another column that jsonb refuses for numeric's
    scale (6,400 fractional digits, e-9999) stopped the stage: it is kept as its text."""
    source = fresh_source(stack, "cons_text", rows=3, seed=5)
    huge = '{"v": 1.' + "1" * 7000 + "e-9999}"
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            'alter table landing_leads add column "esc\x1b[31mred" text, add column x_json json,'
            ' add column "nl\nOK: fake line" text'
        )
        lead = conn.execute(
            'insert into landing_leads (name, phone, "esc\x1b[31mred", x_json, "nl\nOK: fake line") values'
            " ('Text', '+77015550701', 'v', %s, 'w') returning id",
            (huge,),
        ).fetchone()[0]
        conn.execute("insert into lead_journey (lead_id, stage, source) values (%s, '[/]', 'x')", (lead,))
        # refused values that are not kept as text in a lead: a quarantined row's (a name past
        # 200 characters), and one under a key the row's own metadata has (found by review:
        # counted too)
        conn.execute(
            "insert into landing_leads (name, phone, x_json, metadata) values (%s, '+77015550702', %s, null),"
            " ('Own key', '+77015550703', %s, '{\"x_json\": \"own\"}')",
            ("Н" * 201, '{"a": "\\ud800"}', '["\\udc00x"]'),
        )
    target = fresh_target(stack, "cons_text_t")
    report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    assert report.quarantine_reasons == {
        "lead_journey: stage '[/]' is not a valid stage name": 1,
        "landing_leads: name longer than 200 characters": 1,
    }
    with psycopg.connect(target) as conn:
        kept = conn.execute(
            "select metadata -> 'x_json' from public.traffic_leads where legacy_id = %s", (str(lead),)
        ).fetchone()
    assert kept == (huge,)  # as its text, whole
    console = Console(record=True, width=250)
    render_report(console, report)
    shown = console.export_text()
    assert "quarantined - lead_journey: stage '[/]' is not a valid stage name" in shown
    assert "\x1b" not in shown and "landing_leads.esc\\x1b[31mred: a column" in shown
    # a line break in a column's name made a report row of its own (found by review)
    assert "landing_leads.nl\\nOK: fake line: a column" in shown
    # a json value jsonb refuses, kept as its text in the metadata, is counted (found by review)
    assert report.extra_columns["landing_leads.x_json"]["rows_kept_as_json_text"] == 1
    assert "landing_leads.x_json: json values jsonb refuses, kept as their text" in shown


def test_a_landing_column_changed_after_the_checks_stops_the_backup(
    stack: LocalStack, tmp_path: Path
) -> None:
    """The import names the backup's values by the preflight's column list: a column dropped
    (or added) in Landing between the checks and the backup gave its values the next column's
    name (found by review). The backup compares under a lock, and stops with one clear error
    before anything is written."""
    from onai_db.consolidate import backup
    from onai_db.consolidate.connect import check_source

    source = fresh_source(stack, "cons_cols", rows=3, seed=6)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("alter table landing_leads add column tmp_col text")
        columns, types = check_source(conn)
        conn.execute("alter table landing_leads drop column tmp_col, add column later_col text")
        with pytest.raises(ConsolidationError) as err:
            backup.backup_tables(conn, columns, types, tmp_path / "bk", lambda *a: None)
    assert err.value.kind == "source_changed"
    assert "landing_leads changed after the checks" in str(err.value) and "tmp_col text" in str(err.value)
    assert "later_col text" in str(err.value)
    assert not [p for p in (tmp_path / "bk").rglob("*") if p.is_file()]


def test_the_backup_is_one_snapshot_while_landing_is_written(stack: LocalStack, tmp_path: Path) -> None:
    """The files are copied one after another while Landing's forms keep writing: each holds
    what the first one's moment held, so the manifest's counts and the rows that reach the
    target agree (mutation review: the snapshot was unpinned). Here every table is emptied
    by another session as soon as the first file is written."""
    from onai_db.consolidate import backup
    from onai_db.consolidate.connect import check_source

    source = fresh_source(stack, "cons_snapshot", rows=20, seed=7)
    with psycopg.connect(source, autocommit=True) as conn, psycopg.connect(source, autocommit=True) as writer:
        columns, types = check_source(conn)
        before = {t: conn.execute(f"select count(*) from public.{t}").fetchone()[0] for t in columns}
        emptied: list[bool] = []

        def progress(_phase: str, _advance: int, _total: int | None) -> None:
            if not emptied:
                emptied.append(True)
                for table in columns:
                    writer.execute(f"delete from public.{table}")

        manifest = backup.backup_tables(conn, columns, types, tmp_path / "bk", progress)
        assert emptied and all(
            conn.execute(f"select count(*) from public.{t}").fetchone()[0] == 0 for t in columns
        )
    assert {t: f.rows for t, f in manifest.tables.items()} == before
    assert all(n > 0 for n in before.values()), before


def _wait_for_it(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_landing_table_locked_by_another_session_is_named_then_refused(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Landing session holding (or awaiting) an exclusive lock on a table made the backup
    wait without a word for as long as it lasted (found by review). The wait is announced at
    once, naming that server process and its statement, and bounded: source_busy, nothing
    written. Once the lock is free, the backup goes on and says so; its manifest's time is
    when it could read (found by review: the time before the wait)."""
    import threading

    from onai_db.consolidate import backup, landing_locks
    from onai_db.consolidate.connect import check_source

    monkeypatch.setattr(landing_locks, "LOCK_WAIT_S", 1.0)
    source = fresh_source(stack, "cons_locked", rows=3, seed=8)
    said: list[str] = []
    with psycopg.connect(source, autocommit=True) as conn, psycopg.connect(source) as other:
        columns, types = check_source(conn)
        other.execute("lock table public.lead_journey in access exclusive mode")
        pid = other.info.backend_pid
        with pytest.raises(ConsolidationError) as err:
            backup.backup_tables(conn, columns, types, tmp_path / "bk", lambda *a: None, said.append)
        assert err.value.kind == "source_busy" and "waited 1 s for the backup" in str(err.value)
        assert f"server process {pid} holds an exclusive lock on lead_journey" in str(err.value)
        assert len(said) == 1 and f"server process {pid}" in said[0] and "lock table" in said[0], said
        assert not [p for p in (tmp_path / "bk").rglob("*") if p.is_file()]
        # freed while the backup waits: it goes on
        said.clear()
        monkeypatch.setattr(landing_locks, "LOCK_WAIT_S", 30.0)
        threading.Timer(1.5, other.rollback).start()
        before = datetime.now(UTC).replace(microsecond=0)
        manifest = backup.backup_tables(conn, columns, types, tmp_path / "bk2", lambda *a: None, said.append)
    assert set(manifest.tables) == set(columns)
    assert said[0].startswith("waiting for Landing's tables") and said[-1].endswith(
        "going on with the backup"
    )
    assert datetime.fromisoformat(manifest.taken_at) >= before + timedelta(seconds=1)


def test_the_checks_wait_for_a_locked_landing_table_within_the_limit_too(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preflight reads every legacy table (ids, duplicates, the earlier runs' sample):
    behind a session holding one of them it waited without a word and without a limit, so
    the backup's bound never came into play (found by review). It waits as the backup does,
    naming a DDL queued behind an idle transaction and that transaction (found by review:
    only the DDL was named)."""
    import threading

    from onai_db.consolidate import landing_locks
    from onai_db.consolidate.connect import check_source

    monkeypatch.setattr(landing_locks, "LOCK_WAIT_S", 1.0)
    source = fresh_source(stack, "cons_locked_checks", rows=3, seed=9)
    said: list[str] = []
    with (
        psycopg.connect(source, autocommit=True) as conn,
        psycopg.connect(source) as reader,
        psycopg.connect(source, autocommit=True) as migration,
    ):
        reader.execute("select count(*) from public.landing_leads")  # an open transaction, idle
        reader_pid, migration_pid = reader.info.backend_pid, migration.info.backend_pid
        queued = threading.Thread(
            target=lambda: migration.execute("alter table public.landing_leads add column probe text"),
        )
        queued.start()
        try:
            _wait_for_it(
                lambda: (
                    conn.execute(
                        "select count(*) from pg_locks where not granted and mode = 'AccessExclusiveLock'"
                    ).fetchone()
                    == (1,)
                )
            )
            with pytest.raises(ConsolidationError) as err:
                check_source(conn, said.append)
        finally:
            reader.rollback()
            queued.join(timeout=30)
    message = str(err.value)
    assert err.value.kind == "source_busy" and "waited 1 s for the checks" in message
    assert f"server process {migration_pid} awaits an exclusive lock on landing_leads" in message
    assert f"behind server process {reader_pid} (idle in transaction)" in message, message
    assert len(said) == 1 and said[0].startswith("waiting for Landing's tables"), said


def test_the_preflight_says_when_it_waits_for_a_locked_landing_table(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`consolidate` checks both databases before anything else (the preflight); behind a
    locked Landing table it waited within the limit but without a word (found by review),
    while the run's own checks said so."""
    from onai_db.consolidate import landing_locks
    from onai_db.consolidate.runner import preflight

    monkeypatch.setattr(landing_locks, "LOCK_WAIT_S", 1.0)
    source = fresh_source(stack, "cons_locked_preflight", rows=3, seed=11)
    said: list[str] = []
    with psycopg.connect(source) as other:
        other.execute("lock table public.landing_leads in access exclusive mode")
        with pytest.raises(ConsolidationError) as err:
            # the source is checked first: the target is never reached
            preflight(source, "postgresql://127.0.0.1:1/unreached", said.append)
    assert err.value.kind == "source_busy"
    assert len(said) == 1 and said[0].startswith("waiting for Landing's tables"), said


def test_the_command_prints_the_preflights_notices() -> None:
    code = (
        "import onai_db.commands.consolidate as c\n"
        "from onai_db.errors import ConsolidationError\n"
        "def waits(source, target, notice=lambda _line: None):\n"
        "    notice('waiting for Landing probe')\n"
        "    raise ConsolidationError('busy', kind='source_busy')\n"
        "c.preflight = waits\n"
        "from onai_db.cli import main; main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "consolidate", "--source", "postgresql://h/l", "--target", "postgresql://h/t"],
        capture_output=True, text=True, check=False,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert out.stderr.splitlines() == ["waiting for Landing probe", "error: busy"], out.stderr


def test_the_backup_never_holds_one_landing_table_while_it_waits_for_another(
    stack: LocalStack, tmp_path: Path
) -> None:
    """The backup locked Landing's tables one after the other and kept those it had while it
    waited for the next: a migration that altered lead_journey and then landing_leads was
    killed by the deadlock it made with the backup (found by review). It takes them all or
    none, so the migration goes through, and the backup then finds the columns changed."""
    import threading

    from onai_db.consolidate import backup
    from onai_db.consolidate.connect import check_source

    source = fresh_source(stack, "cons_locked_order", rows=3, seed=10)
    with psycopg.connect(source, autocommit=True) as conn, psycopg.connect(source) as migration:
        columns, types = check_source(conn)
        migration.execute("alter table public.lead_journey add column probe_a text")
        ended: list[BaseException] = []

        def back_up() -> None:
            try:
                backup.backup_tables(conn, columns, types, tmp_path / "bk", lambda *a: None, lambda _m: None)
            except BaseException as exc:  # the outcome, asserted below
                ended.append(exc)

        backing_up = threading.Thread(target=back_up)
        backing_up.start()
        time.sleep(1.0)  # the backup has tried and waits
        migration.execute("set lock_timeout = '10s'")
        migration.execute("alter table public.landing_leads add column probe_b text")  # deadlocked before
        migration.commit()
        backing_up.join(timeout=60)
    assert not backing_up.is_alive()
    assert len(ended) == 1 and isinstance(ended[0], ConsolidationError), ended
    assert ended[0].kind == "source_changed" and "probe_b text" in str(ended[0])


def test_columns_beyond_the_known_schema_are_used_kept_and_reported(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Seed 004 joins `landing_leads (id, utm_source)` to the UTM owners: a Landing whose
    leads carry UTM columns has them read (over the same metadata keys), and its click
    columns go into traffic_leads' own. Any other column with values was backed up and
    silently ignored: on a lead table its values now go into the lead's metadata (typed, json
    parsed, the row's own keys win), elsewhere they stay in the backup, and the report names
    each such column with its count. Values too large to join the row's metadata stay in the
    backup (they used to quarantine the row, its lead and its journey; found by review)."""
    source = fresh_source(stack, "cons_extra", rows=5, seed=17)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "alter table landing_leads add column utm_source text, add column utm_campaign text,"
            " add column email_clicked boolean, add column email_clicked_at timestamptz,"
            " add column clicks_total integer, add column note text, add column payload jsonb,"
            ' add column raw_request text, add column padded text, add column "[/]" text'
        )
        conn.execute("alter table lead_tracking add column referrer text, add column updated_at timestamptz")
        conn.execute("alter table lead_journey add column device text")
        lead = conn.execute(
            "insert into landing_leads (name, phone, utm_source, utm_campaign, email_clicked, email_clicked_at,"
            " clicks_total, note, payload, padded, \"[/]\", metadata) values ('Extra', '+77015550601',"
            """ 'fb_arystan', ' ', true, '2024-03-01 10:00+00', 3, 'own key loses',"""
            """ '{"a": [1, 2], "n": null, "o": {"x": null}}', '  padded  ', 'markup',"""
            """ '{"utm_source": "ig_old", "utm_campaign": "spring", "note": "kept"}') returning id"""
        ).fetchone()[0]
        big = conn.execute(
            "insert into landing_leads (name, phone, raw_request, note, metadata) values"
            " ('Big', '+77015550603', repeat(md5(random()::text), 2500), 'n', '{}') returning id"
        ).fetchone()[0]
        conn.execute(
            "insert into lead_tracking (name, phone, referrer, updated_at)"
            " values ('Extra two', '+77015550602', 'google', now())"
        )
        conn.execute(
            "update lead_journey set device = 'ios' where id in (select id from lead_journey limit 2)"
        )
    target = fresh_target(stack, "cons_extra_t")
    report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    meta, big_row = "traffic_leads.metadata", {"rows_left_in_the_backup_for_size": 1}
    assert report.extra_columns == {
        "landing_leads.clicks_total": {"rows_with_value": 1, "kept_in": meta},
        # its row's own metadata has the key 'note', which wins: counted (found by review)
        "landing_leads.note": {
            "rows_with_value": 2,
            "kept_in": meta,
            **big_row,
            "rows_left_in_the_backup_for_a_metadata_key": 1,
        },
        "landing_leads.payload": {"rows_with_value": 1, "kept_in": meta},
        "landing_leads.raw_request": {"rows_with_value": 1, "kept_in": meta, **big_row},
        "landing_leads.padded": {"rows_with_value": 1, "kept_in": meta},
        "landing_leads.[/]": {"rows_with_value": 1, "kept_in": meta},
        "lead_tracking.referrer": {"rows_with_value": 1, "kept_in": "traffic_leads.metadata"},
        "lead_journey.device": {"rows_with_value": 2, "kept_in": "backup only"},
    }
    assert report.data_quality["rows_whose_other_columns_stay_in_the_backup_for_size"] == 1
    assert not report.quarantine_reasons
    with psycopg.connect(target) as conn:
        first = conn.execute(
            "select first_utm_source, first_utm_campaign, metadata - 'utm_source' - 'utm_campaign',"
            " email_clicked, email_clicked_at, sms_clicked from public.traffic_leads"
            " where legacy_source_table = 'landing_leads' and legacy_id = %s",
            (str(lead),),
        ).fetchone()
        second = conn.execute(
            "select metadata from public.traffic_leads where phone_normalized = '+77015550602'"
        ).fetchone()
        large = conn.execute(
            "select metadata, (select count(*) from public.traffic_lead_journey as j where j.lead_id = l.id)"
            " from public.traffic_leads as l where legacy_source_table = 'landing_leads' and legacy_id = %s",
            (str(big),),
        ).fetchone()
    # the column wins over the metadata key; a blank column falls back to the key
    assert first == (
        "fb_arystan",
        "spring",
        # a value kept whole: its json nulls, its spaces (found by review: stripped, trimmed)
        {
            "clicks_total": 3,
            "note": "kept",
            "payload": {"a": [1, 2], "n": None, "o": {"x": None}},
            "padded": "  padded  ",
            "[/]": "markup",
        },
        True,
        datetime(2024, 3, 1, 10, tzinfo=UTC),
        False,
    )
    assert second == ({"referrer": "google"},)
    assert large == ({}, 1)  # imported with its journey; the large value stays in the backup
    console = Console(record=True, width=200)
    render_report(console, report)
    shown = console.export_text()  # a column's name is no markup (found by review: '[/]' failed it)
    assert "lead_journey.device: a column the import does not read (kept in the backup only)" in shown
    assert "landing_leads.[/]: a column the import does not read (kept in the lead's metadata)" in shown
    assert "landing_leads.raw_request: values kept in the backup only" in shown
    assert "landing_leads.note: values kept in the backup only (the row's metadata has that key" in shown
    again = consolidate(source, target, tmp_path / "again")
    assert again.ok and not again.changed, again.to_json()
    # a column Landing keeps updating (bookkeeping, counters) is no change of what was imported
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("update lead_tracking set updated_at = now() + interval '1 hour'")
        conn.execute("update landing_leads set clicks_total = 4 where id = %s", (lead,))
    third = consolidate(source, target, tmp_path / "third")
    assert third.ok and not third.changed and all(t.changed_in_landing == 0 for t in third.tables)


def test_array_columns_beyond_the_known_schema_become_json_arrays(stack: LocalStack, tmp_path: Path) -> None:
    """An array column the import does not know went into the lead's metadata as the one
    string PostgreSQL prints for it ('{a,"b c"}'), which no reader of the metadata could use
    (left in earlier notes). It is a JSON array now: integers, booleans and jsonb typed as the
    same scalar columns are, other elements as text, nested for more dimensions, NULLs kept."""
    source = fresh_source(stack, "cons_arrays", rows=3, seed=19)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("create type mood as enum ('calm', 'keen')")
        # found by review: types whose array text casts wrongly or not at all as text[] or bigint[]
        conn.execute("create domain public.int4 as text")
        conn.execute(
            "alter table landing_leads add column tags text[], add column scores integer[],"
            " add column flags boolean[], add column docs jsonb[], add column grid bigint[],"
            " add column moods mood[], add column stamps timestamptz[], add column nothing text[],"
            " add column shadow public.int4[], add column boxes box[], add column vec int2vector"
        )
        lead = conn.execute(
            "insert into landing_leads (name, phone, tags, scores, flags, docs, grid, moods, stamps, nothing, shadow, boxes, vec,"
            " metadata) values ('Arrays', '+77015550611', array['a', 'b c', null, '{x}'], array[3, null, -1],"
            """ array[true, false], array['{"k": [1, null]}'::jsonb, 'null'], '{{1,2},{3,4}}',"""
            " array['keen'::mood], array['2024-03-01 10:00+00'::timestamptz], '{}', '{abc}', '{(1,1),(0,0);(3,3),(2,2)}',"
            " '1 2 3', '{}') returning id"
        ).fetchone()[0]
    target = fresh_target(stack, "cons_arrays_t")
    report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    assert report.extra_columns["landing_leads.tags"] == {
        "rows_with_value": 1,
        "kept_in": "traffic_leads.metadata",
    }
    with psycopg.connect(target) as conn:
        conn.execute("set timezone = 'UTC'")
        (meta,) = conn.execute(
            "select metadata from public.traffic_leads where legacy_source_table = 'landing_leads' and legacy_id = %s",
            (str(lead),),
        ).fetchone()
    assert meta == {
        "tags": ["a", "b c", None, "{x}"],
        "scores": [3, None, -1],
        "flags": [True, False],
        "docs": [{"k": [1, None]}, None],
        "grid": [[1, 2], [3, 4]],
        "moods": ["keen"],
        "stamps": ["2024-03-01 10:00:00+00"],
        "nothing": [],
        "shadow": ["abc"],  # a domain named int4 is no integer
        "boxes": "{(1,1),(0,0);(3,3),(2,2)}",  # box[] separates with ';': kept as its text
        "vec": "1 2 3",  # int2vector: no array literal, kept as its text
    }


def test_a_column_named_like_a_statement_hole_is_only_a_column(stack: LocalStack, tmp_path: Path) -> None:
    """The statement that stages the lead rows is built from a template with holes for each
    table's columns; filled one after another, a Landing column named like a later hole had
    the next table's column names put inside a string literal, where a crafted name ran SQL
    of its own in Traffic (found by review). The holes are filled in one pass now."""
    source = fresh_source(stack, "cons_hole", rows=5, seed=18)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute('alter table landing_leads add column "@unified_extra@" text')
        conn.execute(
            """alter table unified_lead_tracking add column "x'); create table public.pwned (i int); --" text"""
        )
        conn.execute(
            """update landing_leads set "@unified_extra@" = 'v' where id = (select id from landing_leads order by id limit 1)"""
        )
        conn.execute(
            """update unified_lead_tracking set "x'); create table public.pwned (i int); --" = 'w'"""
            " where id = (select id from unified_lead_tracking order by id limit 1)"
        )
    target = fresh_target(stack, "cons_hole_t")
    report = consolidate(source, target, tmp_path)
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:
        assert conn.execute("select to_regclass('public.pwned')").fetchone() == (None,)
        kept = conn.execute(
            "select count(*) filter (where metadata ? '@unified_extra@'),"
            " count(*) filter (where metadata ? 'x''); create table public.pwned (i int); --')"
            " from public.traffic_leads"
        ).fetchone()
    assert kept == (1, 1)


def test_a_run_that_fails_is_marked_failed_with_its_error(stack: LocalStack, tmp_path: Path) -> None:
    """A run stopped by an error (here a check the target gained that the import does not
    know) is marked failed in the ledger with its error, not left 'running' for ever."""
    source = fresh_source(stack, "cons_failed", rows=5, seed=15)
    target = fresh_target(stack, "cons_failed_t")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(
            "alter table public.traffic_lead_journey add constraint no_new_rows check (false) not valid"
        )
    with pytest.raises(
        ConsolidationError, match=r"^leads failed: .*SQLSTATE 23514.* run the same command again"
    ):
        consolidate(source, target, tmp_path)
    with psycopg.connect(target) as conn:
        status, error = conn.execute(
            "select status, report ->> 'error' from private.consolidation_runs order by id desc limit 1"
        ).fetchone()
        assert status == "failed" and "SQLSTATE 23514" in error, error


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_connection_lost_mid_run_is_one_line_and_the_rerun_finishes(
    stack: LocalStack, tmp_path: Path, jobs: int
) -> None:
    source = fresh_source(stack, f"cons_lost{jobs}", rows=300, seed=16)
    target = fresh_target(stack, f"cons_lost{jobs}_t")
    killed: list[int] = []

    def kill_target_sessions(phase: str, _advance: int, _total: int | None) -> None:
        if phase == "leads" and not killed:  # after the first batch committed
            with psycopg.connect(target, autocommit=True) as conn:
                killed.extend(
                    pid for (pid,) in conn.execute(
                        # the newest session: with two jobs the second batch connection only
                        "select pg_terminate_backend(pid)::int * pid from pg_stat_activity"
                        " where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'"
                        " order by backend_start desc limit 1"
                    ).fetchall()
                )  # fmt: skip

    with pytest.raises(ConsolidationError) as failure:
        consolidate(source, target, tmp_path, batch_size=50, jobs=jobs, progress=kill_target_sessions)
    message = str(failure.value)
    assert killed and "\n" not in message, message
    assert message.startswith("leads failed: lost the connection to the target (Traffic): "), message
    assert message.endswith("run the same command again to resume"), message
    assert failure.value.kind == "database_failure", failure.value.kind  # for a machine
    report = consolidate(source, target, tmp_path / "again", batch_size=50)
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:  # marked failed, or, its connection gone, interrupted
        first = conn.execute(
            "select id, status from private.consolidation_runs order by id limit 1"
        ).fetchone()
    assert first is not None and first[1] == ("interrupted" if jobs == 1 else "failed")
    assert report.resumed_from == first[0]  # it says where it went on from, failed or not
    # a run that went to its end is not "resumed", even when its verification found something
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(
            "update private.consolidation_runs set status = 'failed' where id = %s", (report.run_id,)
        )
    assert consolidate(source, target, tmp_path / "third", batch_size=50).resumed_from is None


def test_another_landing_database_is_refused_by_a_consolidated_target(
    stack: LocalStack, tmp_path: Path
) -> None:
    """One Landing per Traffic: a second, different source would be matched by colliding
    bigserial ids (lead_tracking 2 read as 'already imported') and lose people."""
    first = fresh_source(stack, "cons_first", rows=30, seed=18)
    target = fresh_target(stack, "cons_first_t")
    assert consolidate(first, target, tmp_path).ok
    other = fresh_source(stack, "cons_other", rows=30, seed=19)
    with psycopg.connect(target) as conn:
        before = conn.execute("select count(*) from private.consolidation_runs").fetchone()
    with pytest.raises(
        ConsolidationError, match="not the Landing database this target was consolidated from"
    ):
        consolidate(other, target, tmp_path / "other")
    with psycopg.connect(target) as conn:
        assert conn.execute("select count(*) from private.consolidation_runs").fetchone() == before
    # the same Landing, with rows deleted since, is still itself
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("delete from scheduled_notifications")
        conn.execute(
            "delete from lead_journey where lead_id in (select id from landing_leads order by id limit 5)"
        )
        conn.execute(
            "delete from landing_leads where id in (select id from landing_leads order by id limit 5)"
        )
    assert consolidate(first, target, tmp_path / "again").ok


def test_a_sql_ascii_source_is_one_clear_error(stack: LocalStack, tmp_path: Path) -> None:
    from onai_db.legacy import install_schema

    with psycopg.connect(stack.database_url("postgres", "supabase_admin"), autocommit=True) as conn:
        conn.execute(f"drop database if exists {scratch_db('cons_ascii')}")
        conn.execute(
            f"create database {scratch_db('cons_ascii')} encoding 'SQL_ASCII' template template0"
            " lc_collate 'C' lc_ctype 'C'"
        )
    with psycopg.connect(
        stack.database_url(scratch_db("cons_ascii"), "supabase_admin"), autocommit=True
    ) as conn:
        install_schema(conn)
    target = fresh_target(stack, "cons_ascii_t")
    with pytest.raises(ConsolidationError, match="encoding is SQL_ASCII") as refused:
        consolidate(stack.database_url(scratch_db("cons_ascii"), "supabase_admin"), target, tmp_path)

    assert refused.value.kind == "source_encoding"


def test_data_quality_counts_read_blanks_as_the_rpc_does(stack: LocalStack, tmp_path: Path) -> None:
    """A phone or email of only tabs, line breaks or no-break spaces is blank (as in
    find_or_create_unified_lead), not an unusable value kept raw."""
    source = fresh_source(stack, "cons_dqblank", rows=10, seed=16)
    target = fresh_target(stack, "cons_dqblank_t")
    before = consolidate(source, target, tmp_path).data_quality
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into landing_leads (name, phone, email) values ('Blank', E'\\u00a0\\t', E'\\r\\n'),"
            " ('Junk', 'call me', 'not an email')"
        )
    after = consolidate(source, target, tmp_path / "again").data_quality
    assert after["unusable_phones_kept_raw"] == before["unusable_phones_kept_raw"] + 1
    assert after["invalid_emails_kept_raw"] == before["invalid_emails_kept_raw"] + 1


def test_unicode_blanks_around_a_phone_or_email_are_trimmed_before_matching(
    stack: LocalStack, tmp_path: Path
) -> None:
    """A zero-width space before an email, a line separator after a phone: the RPC trims them
    and matches the person; the identity plan normalized the untrimmed value, so the lead it
    wrote met the other lead's email and every run failed (23503)."""
    source = fresh_source(stack, "cons_zwsp", rows=10, seed=17)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into landing_leads (name, email, phone, created_at) values"
            " ('First', 'zw@example.com', '87015550177', '2024-01-01'),"
            " ('Second', U&'\\200Bzw@example.com', null, '2024-01-02'),"
            " ('Third', null, U&'87015550177\\2028', '2024-01-03'),"
            " ('Fourth', U&'\\FEFFzw2@example.com\\3000', U&'\\00A0+7 701 555 01 88', '2024-01-04'),"
            " ('Fifth', 'ZW2@example.com', null, '2024-01-05')"
        )
    target = fresh_target(stack, "cons_zwsp_t")
    report = consolidate(source, target, tmp_path / "1")
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:
        leads = conn.execute(
            "select name, email, phone from public.traffic_leads where merged_into is null"
            " and email_normalized in ('zw@example.com', 'zw2@example.com') order by name"
        ).fetchall()
    assert leads == [
        ("First", "zw@example.com", "87015550177"),
        ("Fourth", "zw2@example.com", "+7 701 555 01 88"),
    ]
    assert not consolidate(source, target, tmp_path / "2").changed


def test_the_report_counts_legacy_notifications_still_pending(stack: LocalStack, tmp_path: Path) -> None:
    """Imported notifications are not sent by onai-db; the report says how many still wait."""
    source = fresh_source(stack, "cons_pending", rows=40, seed=17)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "update scheduled_notifications set status = 'pending', scheduled_for = now() + interval '2 days'"
            " where id in (select id from scheduled_notifications order by id limit 3)"
        )
        (want,) = conn.execute(
            "select count(*) from scheduled_notifications as n join landing_leads as l on l.id = n.lead_id"
            " where n.status = 'pending' and n.scheduled_for > now()"
        ).fetchone()
    target = fresh_target(stack, "cons_pending_t")
    report = consolidate(source, target, tmp_path)
    assert report.ok and want >= 1
    assert report.notifications_pending == want
    assert report.to_json()["notifications_pending"] == want


def test_timestamps_without_a_time_zone_are_read_as_utc_whatever_the_target_says(
    stack: LocalStack, tmp_path: Path
) -> None:
    source = fresh_source(stack, "cons_naive", rows=10, seed=19)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "alter table landing_leads alter column created_at type timestamp without time zone"
            " using created_at at time zone 'UTC'"
        )
        conn.execute(
            "insert into landing_leads (name, email, created_at) values ('Naive', 'naive@example.kz', '2025-01-06 01:41')"
        )
    target = fresh_target(stack, "cons_naive_t")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(f"alter database {scratch_db('cons_naive_t')} set timezone = 'Asia/Almaty'")  # +05
        conn.execute(
            f"alter role postgres in database {scratch_db('cons_naive_t')} set statement_timeout = '1ms'"
        )
    report = consolidate(source, target, tmp_path)  # and no login timeout cuts it short
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:
        conn.execute("set statement_timeout = 0")
        conn.execute("set timezone = 'UTC'")
        row = conn.execute(
            "select created_at::text from public.traffic_leads where email_normalized = 'naive@example.kz'"
        ).fetchone()
    assert row == ("2025-01-06 01:41:00+00",)


def test_an_idle_session_timeout_of_the_target_does_not_cut_a_long_backup_short(
    stack: LocalStack, tmp_path: Path
) -> None:
    """The target's session idles while the source is backed up (minutes at scale)."""
    source = fresh_source(stack, "cons_idle", rows=10, seed=23)
    target = fresh_target(stack, "cons_idle_t")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(
            f"alter role postgres in database {scratch_db('cons_idle_t')} set idle_session_timeout = '300ms'"
        )
    slept: list[str] = []

    def slow_backup(phase: str, _advance: int, _total: int | None) -> None:
        if phase == "backup" and not slept:
            slept.append(phase)
            time.sleep(1.0)

    report = consolidate(source, target, tmp_path, progress=slow_backup)
    assert slept and report.ok, report.to_json()


def test_ctrl_c_stops_parallel_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """With --jobs 2 a Ctrl-C used to let the worker threads apply every remaining batch."""
    from onai_db.consolidate import runner

    applied: list[int] = []

    def slow_batch(conn: object, run_id: int, batch: int, commit: object, *, retry: bool) -> object:
        time.sleep(0.05)
        applied.append(batch)
        return runner.apply.BatchResult(rows=1)

    class Conn:
        def close(self) -> None:
            pass

        def commit(self) -> None:
            pass

        def rollback(self) -> None:
            pass

    monkeypatch.setattr(runner, "_apply_one", slow_batch)
    monkeypatch.setattr(runner, "connect", lambda *_a, **_k: Conn())
    monkeypatch.setattr(runner, "_tune", lambda _c: None)
    batches = runner._apply_batches(Conn(), "url", 1, 200, 2, lambda: None)  # type: ignore[arg-type]
    next(batches)
    with pytest.raises(KeyboardInterrupt):
        batches.throw(KeyboardInterrupt())
    time.sleep(0.3)  # time for a few more batches, if anything still ran them
    assert len(applied) <= 4, applied


def test_a_source_login_under_row_level_security_is_refused(stack: LocalStack, tmp_path: Path) -> None:
    """It saw only the rows its policy let through, and the run reported OK."""
    source = fresh_source(stack, "cons_rls", rows=20, seed=23)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("grant usage on schema public to authenticator")
        conn.execute("grant select on all tables in schema public to authenticator")
        conn.execute("alter table landing_leads enable row level security")
        conn.execute(
            "create policy only_some on landing_leads for select to authenticator using (source ilike 'prof%')"
        )
    target = fresh_target(stack, "cons_rls_t")
    with pytest.raises(
        ConsolidationError, match="row level security may hide rows of landing_leads"
    ) as refused:
        consolidate(stack.database_url(scratch_db("cons_rls"), "authenticator"), target, tmp_path)
    assert refused.value.kind == "source_not_readable"
    with psycopg.connect(target) as conn:
        assert conn.execute("select count(*) from private.consolidation_runs").fetchone() == (0,)


def test_quarantine_reasons_group_whatever_the_legacy_ids_look_like(
    stack: LocalStack, tmp_path: Path
) -> None:
    # uuids, numbers or free text: the report counts each reason once, not one line per id
    source = fresh_source(stack, "cons_reasons", rows=30, seed=9)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("alter table lead_journey alter column lead_id type text")
        conn.execute("drop index lead_journey_lead_id_idx")  # Landing's own index would refuse it
        conn.execute(
            "insert into lead_journey (lead_id, stage) values ('41', 'proftest_submitted'),"
            " ('42', 'proftest_submitted'), ('no such lead', 'expresscourse_clicked'),"
            " (repeat('x', 170), 'proftest_submitted')"
        )
        orphans = conn.execute(
            "select count(*) from lead_journey as j where j.lead_id is not null"
            " and not exists (select 1 from landing_leads as l where l.id::text = j.lead_id)"
        ).fetchone()[0]
    report = consolidate(source, fresh_target(stack, "cons_reasons_t"), tmp_path)
    assert report.ok, report.to_json()
    not_found = {k: v for k, v in report.quarantine_reasons.items() if "not found" in k}
    assert not_found == {"lead_journey: lead <id> not found in landing_leads": orphans}, not_found
    assert orphans >= 4


def test_a_journey_row_moved_in_the_target_fails_the_verification_and_the_run(
    stack: LocalStack, tmp_path: Path
) -> None:
    """An imported journey row moved to another lead in Traffic (by hand, by a bad script) is
    a broken link: the re-run's report is not OK, the command exits 1 and the ledger says
    'failed', not 'completed' (mutation review: neither was pinned, the suite's runs all
    verify clean)."""
    from typer.testing import CliRunner

    from onai_db.cli import app

    source = fresh_source(stack, "cons_broken", rows=30, seed=5)
    target = fresh_target(stack, "cons_broken_t")
    assert consolidate(source, target, tmp_path / "1").ok
    with psycopg.connect(target, autocommit=True) as conn:
        moved = conn.execute(
            "update public.traffic_lead_journey as j set lead_id = ("
            "  select l.id from public.traffic_leads as l"
            "  where l.merged_into is null and l.id <> j.lead_id order by l.lead_no limit 1)"
            " where j.id = (select min(id) from public.traffic_lead_journey where legacy_source_table = 'lead_journey')"
        ).rowcount
    assert moved == 1
    report = consolidate(source, target, tmp_path / "2")
    assert (report.journey_links_broken, report.unaccounted, report.ok) == (1, 0, False)
    with psycopg.connect(target) as conn:
        assert conn.execute(
            "select status from private.consolidation_runs order by id desc limit 1"
        ).fetchone() == ("failed",)
    result = CliRunner().invoke(
        app,
        [
            "consolidate",
            "--source",
            source,
            "--target",
            target,
            "--json",
            "--backup-dir",
            str(tmp_path / "3"),
        ],
    )
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["journey_links_broken"] == 1, doc


def test_a_rerun_that_finds_rows_unaccounted_does_not_say_all_is_consolidated() -> None:
    report = Report(run_id=2, dry_run=False, resumed_from=None, backup_dir="b", fingerprint="f")
    report.tables = [TableCheck("lead_journey", 10, 8, 0, 0, 2, 8, "traffic_lead_journey")]
    report.changes = {"leads_created": 0, "journey_rows": 0}
    console = Console(record=True, width=200)
    render_report(console, report)
    text = console.export_text()
    assert "FAILED: 2 rows unaccounted" in text and "this run changed nothing" in text, text
    assert "already consolidated" not in text, text
    report.tables[0].unaccounted, report.tables[0].migrated = 0, 10
    console = Console(record=True, width=200)
    render_report(console, report)
    assert "nothing to change: the target is already consolidated" in console.export_text()


def test_names_mis_encoded_as_latin1_or_cp1252_are_counted_too(stack: LocalStack, tmp_path: Path) -> None:
    source = fresh_source(stack, "cons_mojibake", rows=10, seed=21)
    utf8 = "Иван Қасымов".encode()
    with psycopg.connect(source, autocommit=True) as conn:
        for table, column in (
            ("landing_leads", "name"),
            ("lead_tracking", "name"),
            ("unified_lead_tracking", "full_name"),
        ):
            conn.execute(f"update {table} set {column} = 'Анна'")  # fmt: skip
        conn.execute(
            "insert into landing_leads (name, phone) values (%s, '+77015550301'), (%s, '+77015550302'),"
            " ('Ðórður Guðmundsson', '+77015550303'), (%s, '+77015550304')",
            (
                utf8.decode("latin-1"),
                utf8.decode("cp1252", errors="replace"),
                utf8.decode("cp1251", errors="replace"),
            ),
        )
    report = consolidate(source, fresh_target(stack, "cons_mojibake_t"), tmp_path)
    assert report.ok, report.to_json()
    assert report.data_quality["mis_encoded_names_kept_raw"] == 3, report.data_quality


def test_the_migrations_required_are_this_checkouts_wherever_the_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other-project"
    (other / "supabase" / "migrations").mkdir(parents=True)
    (other / "supabase" / "config.toml").write_text("")
    (other / "supabase" / "migrations" / "20240101000000_app_init.sql").write_text("select 1;")
    monkeypatch.chdir(other)
    assert checkout_migrations() == local_migrations(Path(__file__).parents[1])


def test_a_writers_lead_adopted_by_a_later_batch_still_joins_its_person(
    owner_conn: psycopg.Connection,
) -> None:
    """A batch claims Olga's e-mail for lead B (her phone's lead) while intake creates a lead
    with that e-mail and Daulet's phone (its identity insert gives way); a later batch adopts
    that lead for Daulet, so it holds Landing data. The end-of-run check merged only a lead
    without Landing data into one with it: the pair stayed split, the run said OK, and the
    e-mail and the phone led to different leads for good (found by review)."""
    from onai_db.consolidate import apply

    sfx = os.urandom(3).hex()
    olga = f"olga-{sfx}@example.kz"
    b = owner_conn.execute(
        "select lead_id from public.find_or_create_unified_lead(p_name => 'Ольга', p_phone => %s,"
        " p_email => %s)",
        (f"+7707{int(sfx, 16) % 10**7:07d}", f"b-{sfx}@example.kz"),
    ).fetchone()[0]
    owner_conn.execute(
        "insert into private.traffic_lead_identifiers (kind, value, lead_id) values ('email', %s, %s)",
        (olga, b),
    )
    a = owner_conn.execute(
        "insert into public.traffic_leads (name, email, phone, legacy_source_table, legacy_id)"
        " values ('Ольга снова', %s, %s, 'landing_leads', %s) returning id",
        (olga, f"+7747{int(sfx, 16) % 10**7:07d}", sfx),
    ).fetchone()[0]
    try:
        holders = (
            "select count(*) from public.traffic_leads as l where l.merged_into is null and"
            " (l.email_normalized = %(e)s or exists (select 1 from private.traffic_lead_identifiers as i"
            " where i.kind = 'email' and i.value = %(e)s and private.live_lead(i.lead_id) = l.id))"
        )
        assert owner_conn.execute(holders, {"e": olga}).fetchone()[0] == 2  # the split the race leaves
        assert apply.reconcile_split_persons(owner_conn) == 1
        assert owner_conn.execute(holders, {"e": olga}).fetchone()[0] == 1
        assert (
            owner_conn.execute("select merged_into from public.traffic_leads where id = %s", (a,)).fetchone()[
                0
            ]
            == b
        )
        assert apply.reconcile_split_persons(owner_conn) == 0
    finally:
        for stmt in (
            "delete from public.traffic_lead_journey where lead_id in (%(a)s, %(b)s)",
            "delete from public.traffic_lead_merges where winner_id in (%(a)s, %(b)s) or loser_id in (%(a)s, %(b)s)",
            "delete from private.traffic_lead_identifiers where lead_id in (%(a)s, %(b)s)",
            "delete from public.traffic_leads where id = %(a)s",  # the loser first
            "delete from public.traffic_leads where id = %(b)s",
        ):
            owner_conn.execute(stmt, {"a": a, "b": b})


def test_an_interrupt_during_the_backup_says_nothing_was_written(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C or SIGTERM while the backup copies Landing said "batches committed so far stay",
    of a run that had written nothing (found by review)."""
    from typer.testing import CliRunner

    from onai_db.cli import app
    from onai_db.consolidate import backup

    src = fresh_source(stack, "cons_backup_stop", rows=20, seed=5)
    target = fresh_target(stack, "cons_backup_stop_t")
    copy_tables = backup.backup_tables

    def interrupted(*_args: object, **_kwargs: object) -> object:
        raise KeyboardInterrupt  # Ctrl-C while the backup copies Landing

    monkeypatch.setattr(backup, "backup_tables", interrupted)
    args = ["consolidate", "--source", src, "--target", target, "--backup-dir", str(tmp_path / "b"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["error"] == (
        "interrupted before the target was written (preflight or backup): nothing was written;"
        " run the same command again"
    )
    with psycopg.connect(target) as conn:
        assert conn.execute("select count(*) from private.consolidation_runs").fetchone()[0] == 0
    # once the target is written, the message says what stays
    monkeypatch.setattr(backup, "backup_tables", copy_tables)
    from onai_db.consolidate import apply

    def stop(*_args: object, **_kwargs: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(apply, "finish_journey", stop)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130, result.output
    assert "batches committed so far stay" in result.stdout


def test_a_run_that_fails_in_the_journey_phase_says_so_in_its_ledger(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The phase update rolled back with the journey's transaction, so the ledger said the run
    failed in 'leads' (found by review)."""
    from onai_db.consolidate import apply

    src = fresh_source(stack, "cons_journey_fail", rows=20, seed=6)
    target = fresh_target(stack, "cons_journey_fail_t")

    def broken(*_args: object, **_kwargs: object) -> object:
        raise psycopg.errors.DiskFull("could not extend file: No space left on device")

    monkeypatch.setattr(apply, "finish_journey", broken)
    with pytest.raises(ConsolidationError, match="journey failed"):
        consolidate(src, target, tmp_path)
    with psycopg.connect(target) as conn:
        assert conn.execute("select status, phase from private.consolidation_runs").fetchall() == [
            ("failed", "journey")
        ]
    monkeypatch.undo()
    report = consolidate(src, target, tmp_path)
    assert report.ok and report.resumed_from is not None


def test_a_second_ctrl_c_does_not_cut_the_stop_short(stack: LocalStack, tmp_path: Path) -> None:
    """Ctrl-C pressed twice: the second one killed the run while it recorded the first, and
    --json lost its document (found by review). Now later signals are ignored while it stops."""
    src = fresh_source(stack, "cons_twice", rows=3000, seed=12)
    target = fresh_target(stack, "cons_twice_t")
    cmd = [
        sys.executable, "-c", "from onai_db.cli import main; main()", "consolidate", "--source", src,
        "--target", target, "--batch-size", "30", "--backup-dir", str(tmp_path / "b"), "--json",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1]
    )
    with psycopg.connect(target, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            n = conn.execute("select count(*) from private.consolidation_batches").fetchone()
            if n and n[0] >= 3:
                break
            time.sleep(0.01)
    for _ in range(40):  # pressed again and again while it stops
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert json.loads(out)["error_kind"] == "interrupted", out
    with psycopg.connect(target) as conn:
        assert conn.execute("select status from private.consolidation_runs").fetchall() == [("interrupted",)]


def test_two_traffic_leads_an_edit_made_to_share_a_number_are_left_alone(
    owner_conn: psycopg.Connection,
) -> None:
    """A phone changed to another lead's old number: find_or_create_unified_lead keeps the two
    apart, so a consolidation must not merge them either (it did, found by review)."""
    from onai_db.consolidate import apply

    sfx = os.urandom(3).hex()
    old_number, new_number = (f"+7701{(int(sfx, 16) + k) % 10**7:07d}" for k in (0, 1))
    b = owner_conn.execute(
        "select lead_id from public.find_or_create_unified_lead(p_name => 'B', p_phone => %s)", (old_number,)
    ).fetchone()[0]
    owner_conn.execute("update public.traffic_leads set phone = %s where id = %s", (new_number, b))
    a = owner_conn.execute(
        "select lead_id from public.find_or_create_unified_lead(p_name => 'A', p_email => %s)",
        (f"a-{sfx}@example.kz",),
    ).fetchone()[0]
    owner_conn.execute("update public.traffic_leads set phone = %s where id = %s", (old_number, a))
    try:
        assert apply.reconcile_split_persons(owner_conn) == 0
        live = owner_conn.execute(
            "select count(*) from public.traffic_leads where id in (%s, %s) and merged_into is null", (a, b)
        ).fetchone()[0]
        assert live == 2
    finally:
        for stmt in (
            "delete from public.traffic_lead_journey where lead_id in (%(a)s, %(b)s)",
            "delete from public.traffic_lead_merges where winner_id in (%(a)s, %(b)s) or loser_id in (%(a)s, %(b)s)",
            "delete from private.traffic_lead_identifiers where lead_id in (%(a)s, %(b)s)",
            "delete from public.traffic_leads where id in (%(a)s, %(b)s) and merged_into is not null",
            "delete from public.traffic_leads where id in (%(a)s, %(b)s)",
        ):
            owner_conn.execute(stmt, {"a": a, "b": b})


def test_length_edges_and_notification_reasons(stack: LocalStack, tmp_path: Path) -> None:
    """One 65-character phone is one quarantined row, not a stopped run; a 320-character
    e-mail (the longest the target takes) is imported; a notification of a quarantined lead
    says why that lead is, and one whose lead comes later leaves the quarantine then, counted
    once (mutation review: each boundary and reason was unpinned)."""
    import uuid

    source = fresh_source(stack, "cons_edges", rows=5, seed=3)
    late = str(uuid.uuid4())
    with psycopg.connect(source, autocommit=True) as conn:
        long_phone = conn.execute(
            "insert into landing_leads (name, phone) values ('LongPhone', repeat('7', 65)) returning id::text"
        ).fetchone()[0]
        conn.execute(
            "insert into landing_leads (name, email) values ('Edge', repeat('a', 308) || '@example.com')"
        )
        bad = conn.execute(
            "insert into landing_leads (created_at) values ('2024-02-01') returning id::text"
        ).fetchone()[0]
        conn.execute(
            "insert into scheduled_notifications (id, lead_id, channel, recipient, template, payload,"
            " scheduled_for, status) values (990001, %s, 'email', 'x@example.com', 'reminder', '{}', now(), 'pending'),"
            " (990002, %s, 'email', 'y@example.com', 'reminder', '{}', now(), 'pending')",
            (bad, late),
        )
    target = fresh_target(stack, "cons_edges_t")
    report = consolidate(source, target, tmp_path / "1")
    assert report.ok, report.to_json()
    with psycopg.connect(target) as conn:
        reasons = {
            (t, i): r
            for t, i, r in conn.execute(
                "select source_table, legacy_id, reason from private.consolidation_quarantine"
            ).fetchall()
        }
        edge = conn.execute("select count(*) from public.traffic_leads where length(email) = 320").fetchone()
    assert reasons[("landing_leads", long_phone)] == "phone longer than 64 characters"
    assert edge == (1,) and not any(r.startswith("email longer") for r in reasons.values())
    assert reasons[("scheduled_notifications", "990001")] == (
        f"its lead landing_leads {bad} is quarantined: no name, email or phone"
    )
    assert reasons[("scheduled_notifications", "990002")] == f"lead {late} not found in landing_leads"
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into landing_leads (id, name, phone) values (%s, 'Late', '+77015550177')", (late,)
        )
    again = consolidate(source, target, tmp_path / "2")
    assert again.ok, again.to_json()
    with psycopg.connect(target) as conn:
        for table, n in (
            ("private.legacy_scheduled_notifications", 1),
            ("private.consolidation_quarantine", 0),
        ):
            assert conn.execute(f"select count(*) from {table} where legacy_id = '990002'").fetchone() == (
                n,
            ), table


def test_an_existing_lead_gets_the_clicks_and_the_first_metadata_and_quarantined_rows_follow_landing(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Landing rows filling a lead Traffic already has add their clicks to its count and carry
    ``sms_clicked``; two rows of 40 kB metadata for one person keep the first row's (both
    would pass the 64 KiB check); after a second run, a quarantined row edited in Landing
    holds its new values, a click count changed in Landing is counted as a change there, and
    a journey row with a bad stage added later for an imported lead is quarantined (mutation
    review: each of these went unnoticed)."""
    source = fresh_source(stack, "cons_fill", rows=0, seed=1)
    target = fresh_target(stack, "cons_fill_t")
    phone = "+77015550166"
    with psycopg.connect(target, autocommit=True) as conn:
        lead = conn.execute(
            "select lead_id from public.find_or_create_unified_lead(p_phone => %s, p_occurred_at => '2020-01-01')",
            (phone,),
        ).fetchone()[0]
        conn.execute("update public.traffic_leads set click_count = 3 where id = %s", (lead,))
    blob = _blob(40_000)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "alter table landing_leads add column sms_clicked boolean, add column sms_clicked_at timestamptz"
        )
        conn.execute(
            "insert into landing_leads (name, phone, click_count, sms_clicked, sms_clicked_at, created_at)"
            " values ('Clicker', %s, 2, true, '2024-01-01Z', '2024-01-01')",
            (phone,),
        )
        conn.execute(
            "insert into landing_leads (name, phone, metadata, created_at) values"
            " ('Big', '+77015550167', jsonb_build_object('a', %s::text), '2024-01-01'),"
            " ('Big', '+77015550167', jsonb_build_object('b', %s::text), '2024-01-02')",
            (blob, blob[::-1]),
        )
        negative = conn.execute(
            "insert into landing_leads (name, phone, click_count) values ('Neg', '+77015550168', -1) returning id::text"
        ).fetchone()[0]
        imported = conn.execute(
            "insert into landing_leads (name, phone) values ('Old', '+77015550169') returning id::text"
        ).fetchone()[0]
    first = consolidate(source, target, tmp_path / "1")
    assert first.ok, first.to_json()
    with psycopg.connect(target) as conn:
        assert conn.execute(
            "select click_count, sms_clicked from public.traffic_leads where id = %s", (lead,)
        ).fetchone() == (5, True)
        assert conn.execute(
            "select metadata ? 'a', metadata ? 'b' from public.traffic_leads where name = 'Big' and merged_into is null"
        ).fetchone() == (True, False)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("update landing_leads set name = 'Neg edited' where id = %s", (negative,))
        conn.execute("update landing_leads set click_count = 9 where id = %s", (imported,))
        conn.execute("insert into lead_journey (lead_id, stage) values (%s, '???')", (imported,))
    again = consolidate(source, target, tmp_path / "2")
    assert again.ok, again.to_json()
    assert again.changes["quarantine_reasons_updated"] == 1, again.changes
    assert {t.table: t.changed_in_landing for t in again.tables}["landing_leads"] == 1
    with psycopg.connect(target) as conn:
        assert conn.execute(
            "select row_data ->> 'name' from private.consolidation_quarantine where legacy_id = %s",
            (negative,),
        ).fetchone() == ("Neg edited",)
        assert conn.execute(
            "select reason from private.consolidation_quarantine where source_table = 'lead_journey'"
        ).fetchall() == [("stage '???' is not a valid stage name",)]


def test_two_existing_leads_joined_by_landing_rows_are_filled_in_time_order(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Two leads Traffic has (a phone's, 2020; an e-mail's, 2021) are tied by a Landing row:
    they become the older one, and the rows fill it in their time order, as the one-by-one
    replay does, so the earliest row's name wins (mutation review: the existing leads'
    ranking was unpinned)."""
    source = fresh_source(stack, "cons_two_existing", rows=0, seed=1)
    target = fresh_target(stack, "cons_two_existing_t")
    phone, email = "+77015550155", "two.existing@example.com"
    with psycopg.connect(target, autocommit=True) as conn:
        older = conn.execute(
            "select lead_id from public.find_or_create_unified_lead(p_phone => %s, p_occurred_at => '2020-01-01')",
            (phone,),
        ).fetchone()[0]
        conn.execute(
            "select public.find_or_create_unified_lead(p_email => %s, p_occurred_at => '2021-01-01')",
            (email,),
        )
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into lead_tracking (id, name, phone, email, created_at) values"
            " (1, 'R', %s, null, '2024-01-01'), (2, 'S', null, %s, '2024-01-02'), (3, null, %s, %s, '2024-01-03')",
            (phone, email, phone, email),
        )
    assert consolidate(source, target, tmp_path).ok
    with psycopg.connect(target) as conn:
        assert conn.execute(
            "select id, name from public.traffic_leads where merged_into is null"
        ).fetchall() == [(older, "R")]


def test_the_report_puts_each_count_in_its_column_and_says_what_the_run_was() -> None:
    """Found by the second mutation review: the table's numbers, the title of a dry run, the
    coverage, the journey links, a resumed run and pending notifications were never read."""
    from onai_db.consolidate.demo import AttributionRow
    from onai_db.consolidate.render import render_attribution

    report = Report(run_id=3, dry_run=True, resumed_from=2, backup_dir="b", fingerprint="f")
    report.tables = [TableCheck("landing_leads", 100, 60, 30, 9, 1, 61, "traffic_leads")]
    report.changes = {"leads_created": 61}
    report.journey_links_checked, report.journey_links_broken = 50, 2
    report.leads_consolidated, report.leads_attributed = 61, 20
    report.notifications_pending = 7
    console = Console(record=True, width=250)
    render_report(console, report)
    text = console.export_text()
    assert "Consolidation verification (dry run: nothing written)" in text
    assert re.search(r"landing_leads +│ +100 │ +60 │ +30 │ +9 │ +1 │ +61 traffic_leads", text), text
    assert re.search(r"journey links preserved +│ 48 / 50", text), text
    assert "20 (32.8%)" in text
    assert "resumed run 2, which stopped before its end" in text
    assert re.search(r"legacy notifications still pending .* │ 7", text), text
    assert "FAILED: 1 rows unaccounted, 2 journey links broken" in text
    console = Console(record=True, width=250)
    render_attribution(console, [AttributionRow("Аня", "A", 10, 4, 3, 1)])
    assert re.search(r"Аня +│ A +│ +10 │ +4 │ +3 │ +1", console.export_text()), console.export_text()


def test_every_phase_bar_ends_at_its_total() -> None:
    from onai_db.progress import phase_progress

    console = Console(record=True, width=120, force_terminal=False)
    with phase_progress(["load", "verify"], console) as progress:
        progress("load", 3, 10)
    text = console.export_text()
    assert re.search(r"load .*10/10", text) and re.search(r"verify .*1/1", text), text
