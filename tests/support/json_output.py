"""What every ``--json`` command prints on stdout: one document on one line, ``ok`` first."""

from __future__ import annotations

import json
from typing import Any


def json_document(stdout: str, ok: bool = True) -> dict[str, Any]:
    """The one document ``stdout`` holds, checked for the shape the README promises."""
    assert stdout.count("\n") == 1 and stdout.endswith("\n"), f"not one line: {stdout!r}"
    doc = json.loads(stdout)
    assert isinstance(doc, dict) and next(iter(doc)) == "ok", stdout
    assert doc["ok"] is ok, stdout
    return doc
