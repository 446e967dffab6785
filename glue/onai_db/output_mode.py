"""Whether the running command was asked for machine-readable output (``--json``), so that
an error reaching the entry point is printed as a JSON document on stdout too."""

from __future__ import annotations

_state = {"json": False}


def want_json(flag: bool) -> None:
    """Called by a ``--json`` command with its parsed flag, before it does anything else."""
    _state["json"] = flag


def json_wanted() -> bool:
    return _state["json"]
