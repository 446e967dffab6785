"""Whether the running command was asked for machine-readable output (``--json``), so that
an error reaching the entry point is printed as a JSON document on stdout too."""

from __future__ import annotations

import json
from collections.abc import Mapping

_state: dict[str, object] = {"json": False, "context": {}}


def want_json(flag: bool) -> None:
    """Called by a ``--json`` command with its parsed flag, before it does anything else."""
    _state["json"] = flag


def json_wanted() -> bool:
    return bool(_state["json"])


def json_context(**fields: object) -> None:
    """Fields every error document of this run carries too (consolidate's source and target:
    found by review, a failed run's document did not say which databases it meant)."""
    _state["context"] = dict(fields)


def error_document(message: str, exit_code: int, kind: str, sqlstate: str | None = None) -> str:
    """What a ``--json`` command prints on stdout instead of its result when it fails:
    ``kind`` names what went wrong (README, "Errors and exit codes"), ``sqlstate`` is the
    database's error code when a database error is behind it."""
    doc: dict[str, object] = {"ok": False, "error": message, "error_kind": kind, "exit_code": exit_code}
    if sqlstate:
        doc["sqlstate"] = sqlstate
    context = _state["context"]
    if isinstance(context, dict):
        doc.update({k: v for k, v in context.items() if k not in doc})
    return json.dumps(doc)


def result_document(doc: Mapping[str, object], ok: bool = True) -> str:
    """What a ``--json`` command prints on stdout when it ends without an error: one line, like
    an error document, with ``ok`` first (the operator review found three commands without it,
    and each indented its own way). ``ok`` is false where the command exits non-zero."""
    return json.dumps({"ok": ok, **{k: v for k, v in doc.items() if k != "ok"}}, default=str)
