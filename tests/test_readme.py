"""The README's SQL examples run as written (as the service role, like the backend)."""

from __future__ import annotations

import re

import pytest

from onai_db.settings import find_project_dir
from support.postgrest import SERVICE, PostgrestSession

README = (find_project_dir() / "README.md").read_text()
EXAMPLES = re.findall(r"```sql\n(.*?)```", README, flags=re.S)


def test_readme_has_sql_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_readme_sql_example_runs(api: PostgrestSession, example: str) -> None:
    rows = api.query(SERVICE, example)
    assert isinstance(rows, list)


def _runbook_steps(text: str, heading: str) -> list[str]:
    """The first word of each numbered step under ``heading`` (up to the next heading)."""
    section = text[text.index(heading) :]
    section = section[: re.search(r"\n#{1,3} ", section[len(heading) :]).start() + len(heading)]  # type: ignore[union-attr]
    return [m.group(2) for m in re.finditer(r"^(\d+)\. \*\*(\w+)", section, flags=re.M)]


def test_the_readme_runbook_numbers_its_steps_as_the_full_runbook_does() -> None:
    """The README's cut-over and docs/consolidation.md's name the same steps by the same
    numbers: the README sends operators to "runbook step 6" of the other (found by the
    operator review: its seven steps were numbered differently from the other's nine)."""
    full = (find_project_dir() / "docs" / "consolidation.md").read_text()
    short = _runbook_steps(README, "## Runbook")
    assert short == _runbook_steps(full, "## Runbook: the real cut-over"), short
    assert short[:2] == ["Back", "Migrate"] and short[-1] == "Retire", short
