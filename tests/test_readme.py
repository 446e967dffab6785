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
