"""Rich renderings shared by the CLI commands (tables a person reads)."""

from __future__ import annotations

from rich.table import Table

from .policies import ROLES, Entry

_ABBREV = {"select": "S", "insert": "I", "update": "U", "delete": "D", "execute": "X"}


def _cell(entry: Entry, role: str) -> str:
    parts = []
    for op in entry.ops:
        rule = entry.cell(role, op)
        if rule == "deny":
            continue
        letter = _ABBREV[op]
        parts.append(letter if rule == "all" else f"{letter}:{rule}")
    return " ".join(parts) if parts else "[dim]-[/dim]"


def matrix_table(matrix: dict[str, Entry]) -> Table:
    table = Table(
        title="Access matrix (S/I/U/D select/insert/update/delete, X execute; :rule = only rows the rule admits)"
    )
    table.add_column("object (public.)", no_wrap=True)
    table.add_column("kind", style="dim", no_wrap=True)
    for role in ROLES:
        table.add_column(role, overflow="fold")
    for name in sorted(matrix):
        entry = matrix[name]
        table.add_row(name.removeprefix("public."), entry.kind, *(_cell(entry, role) for role in ROLES))
    return table
