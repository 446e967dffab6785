"""The ``onai-db`` console script: Ctrl-C is handled before the command line is imported.

Importing the command line (typer, rich, psycopg) takes a few tenths of a second. Ctrl-C in
that time printed a Python traceback, and a ``--json`` command gave no document (found by
review); now it ends as Ctrl-C does later: one line, exit 130, and the document. This module
imports nothing else up front, so what is left is the interpreter's own start (~20 ms).
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .cli import main as cli_main

        cli_main()
    except (KeyboardInterrupt, RuntimeError) as exc:  # while importing, or after the command's own handling
        if not caused_by_ctrl_c(exc):
            raise
        _interrupted()


def caused_by_ctrl_c(exc: BaseException) -> bool:
    """Whether Ctrl-C is behind ``exc``: Python 3.11 wraps an exception raised while a class
    is made (a dataclass field's ``__set_name__``) in a RuntimeError, so Ctrl-C during an
    import can arrive as one (found by trying: it was reported as a bug in onai-db)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _interrupted() -> None:
    import signal

    from .output_mode import error_document

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut the report short
    sys.stderr.write("interrupted\n")
    if any(arg == "--json" or arg.startswith("--json=") for arg in sys.argv[1:]):
        sys.stdout.write(error_document("interrupted", 130, "interrupted") + "\n")
    sys.exit(130)
