"""Rich renderings shared by the CLI commands (tables a person reads)."""

from __future__ import annotations

import re

from rich.console import Console, ConsoleDimensions
from rich.table import Table
from rich.text import Text

from .policies import ROLES, Entry

# C0 and C1 controls (not tab and newline), the bidirectional marks, overrides and isolates,
# which reorder what a terminal shows (U+202E from a provider's text; found by review), and
# the invisible ones a table counts as no width, misaligning its rows (found by review)
_INVISIBLE = r"\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff"
_CONTROL = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE}]")

# Width of output that goes to a file or a pipe: wide enough that no table is folded.
PIPED_WIDTH = 1000


class OutputConsole(Console):
    """A rich console for command output. Sent to a file or a pipe (cron, ``| less``,
    ``> report.txt``), rich assumes 80 columns and folds every table cell to fit; this
    one renders tables at their natural width instead. ``COLUMNS`` still wins."""

    @property
    def size(self) -> ConsoleDimensions:
        dims = super().size
        if self._width is None and not self.is_terminal and "COLUMNS" not in self._environ:
            return ConsoleDimensions(PIPED_WIDTH, dims.height)
        return dims

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size  # as rich's own setter


# with them, for a label on one line: a line break or tab in it (a Landing column's name) made
# a report row of its own (found by review)
# (and the line and paragraph separators, line breaks to many viewers)
_CONTROL_ONE_LINE = re.compile(rf"[\x00-\x1f\x7f-\x9f\u2028\u2029{_INVISIBLE}]")


def one_line(value: object) -> Text:
    """:func:`plain`, with line breaks and tabs written as escapes too: a label that must stay
    on its line."""
    return _escaped(_CONTROL_ONE_LINE, value)


def _escaped(control: re.Pattern[str], value: object) -> Text:
    text = "" if value is None else str(value)
    return Text(control.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text))


def plain(value: object) -> Text:
    """Text from the database or a provider, shown as it is: never read as rich markup (an
    error quoting ``[/b]`` crashed the monitor, ``[field: X]`` vanished) and with control
    characters written as escapes (an ESC in an error reached the terminal)."""
    return _escaped(_CONTROL, value)


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
