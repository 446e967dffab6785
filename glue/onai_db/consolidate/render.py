"""Rich rendering of a consolidation report and the attribution summary."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..render import one_line, plain
from .demo import AttributionRow
from .verify import Report

# why an imported row's value of another column stays in the backup (load.count_extra_values)
_LEFT_IN_THE_BACKUP = (
    ("rows_left_in_the_backup_for_size", "the lead's metadata would pass 64 KiB"),
    ("rows_left_in_the_backup_for_a_metadata_key", "the row's metadata has that key, which wins"),
)


def render_report(console: Console, report: Report) -> None:
    title = "Consolidation verification" + (" (dry run: nothing written)" if report.dry_run else "")
    table = Table(title=title)
    for col in ("table", "source rows", "migrated", "merged", "quarantined", "unaccounted", "target rows"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for t in report.tables:
        style = "red" if t.unaccounted else None
        table.add_row(
            t.table,
            f"{t.source_rows:,}",
            f"{t.migrated:,}",
            f"{t.merged:,}",
            f"{t.quarantined:,}",
            f"{t.unaccounted:,}",
            f"{t.target_rows:,} {t.target_table}",
            style=style,
        )
    console.print(table)
    facts = Table(show_header=False, title="Checks")
    facts.add_row("journey links preserved", f"{report.journey_links_checked - report.journey_links_broken:,}"
                  f" / {report.journey_links_checked:,}")  # fmt: skip
    if report.journey_links_changed_in_landing:
        facts.add_row(
            "journey rows re-linked in Landing since their import (kept as imported)",
            f"{report.journey_links_changed_in_landing:,}",
        )
    facts.add_row("consolidated leads", f"{report.leads_consolidated:,}")
    facts.add_row("with first-touch UTM", f"{report.leads_with_utm:,}")
    facts.add_row(
        "attributed to a targetologist", f"{report.leads_attributed:,} ({report.attribution_coverage:.1%})"
    )
    for k, v in report.data_quality.items():
        facts.add_row(k.replace("_", " "), f"{v:,}")
    for name, extra in report.extra_columns.items():
        where = (
            "kept in the lead's metadata" if extra["kept_in"] != "backup only" else "kept in the backup only"
        )
        # a column's name is Landing's data: never read as markup (found by review: '[/]' failed
        # the report of a completed run, '[green]…' could fake a line), no control character
        facts.add_row(
            Text.assemble(one_line(name), f": a column the import does not read ({where})"),
            f"{extra['rows_with_value']:,}",
        )
        if extra.get("rows_kept_as_json_text"):
            facts.add_row(
                Text.assemble(one_line(name), ": json values jsonb refuses, kept as their text (a string)"),
                f"{extra['rows_kept_as_json_text']:,}",
            )
        for key, why in _LEFT_IN_THE_BACKUP:
            if extra.get(key):
                facts.add_row(
                    Text.assemble(one_line(name), f": values kept in the backup only ({why})"),
                    f"{extra[key]:,}",
                )
    for check in report.tables:
        if check.deleted_in_landing:
            facts.add_row(
                f"{check.table}: imported earlier, deleted in Landing since (kept in Traffic)",
                f"{check.deleted_in_landing:,}",
            )
        if check.quarantined_deleted_in_landing:
            facts.add_row(
                f"{check.table}: quarantined earlier, deleted in Landing since (kept in the quarantine)",
                f"{check.quarantined_deleted_in_landing:,}",
            )
        if check.changed_in_landing:
            facts.add_row(
                f"{check.table}: imported earlier, changed in Landing since (kept as imported)",
                f"{check.changed_in_landing:,}",
            )
    if report.notifications_pending:
        facts.add_row(
            "legacy notifications still pending (not sent by onai-db: review them, docs/consolidation.md)",
            f"{report.notifications_pending:,}",
        )
    for k, v in report.quarantine_reasons.items():
        # a reason quotes Landing's values (a stage '[/]' failed the report, found by review)
        facts.add_row(Text.assemble("quarantined - ", one_line(k)), f"{v:,}")
    console.print(facts)
    changes = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in report.changes.items())
    if not report.changed and report.ok:
        console.print("[green]nothing to change: the target is already consolidated (0 changes)[/green]")
    elif not report.changed:  # a re-run that cannot fix what the verification finds (below)
        console.print("this run changed nothing (0 changes)")
    else:
        console.print(f"changes: {changes}")
    if report.resumed_from:
        console.print(f"resumed run {report.resumed_from}, which stopped before its end")
    console.print(Text.assemble("backup: ", plain(report.backup_dir), f" (fingerprint {report.fingerprint})"))
    verdict = "[green]OK: every source row accounted for[/green]"
    if not report.ok:
        verdict = (
            f"[red]FAILED: {report.unaccounted:,} rows unaccounted, "
            f"{report.journey_links_broken:,} journey links broken[/red]"
        )
    console.print(verdict)


def render_attribution(console: Console, rows: list[AttributionRow]) -> None:
    table = Table(title="Attribution of consolidated leads per targetologist (first touch)")
    for col in ("targetologist", "team", "leads", "proftest", "expresscourse", "paid"):
        table.add_column(col, justify="left" if col in ("targetologist", "team") else "right")
    for r in rows:
        table.add_row(
            plain(r.targetologist), plain(r.team), f"{r.leads:,}", f"{r.proftest_submitted:,}",
            f"{r.expresscourse_submitted:,}", f"{r.paid:,}",
        )  # fmt: skip
    console.print(table)
