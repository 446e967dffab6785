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


def error_document(message: str, exit_code: int) -> str:
    """What a ``--json`` command prints on stdout instead of its result when it fails."""
    return json.dumps({"ok": False, "error": message, "exit_code": exit_code})
