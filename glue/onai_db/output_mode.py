"""Whether the running command was asked for machine-readable output (``--json``), so that
an error reaching the entry point is printed as a JSON document on stdout too."""

from __future__ import annotations

import json

_state = {"json": False}


def want_json(flag: bool) -> None:
    """Called by a ``--json`` command with its parsed flag, before it does anything else."""
    _state["json"] = flag


def json_wanted() -> bool:
    return _state["json"]


def error_document(message: str, exit_code: int, kind: str, sqlstate: str | None = None) -> str:
    """What a ``--json`` command prints on stdout instead of its result when it fails:
    ``kind`` names what went wrong (README, "Errors and exit codes"), ``sqlstate`` is the
    database's error code when a database error is behind it."""
    doc: dict[str, object] = {"ok": False, "error": message, "error_kind": kind, "exit_code": exit_code}
    if sqlstate:
        doc["sqlstate"] = sqlstate
    return json.dumps(doc)
