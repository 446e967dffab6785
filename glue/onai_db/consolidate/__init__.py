"""Landing -> Traffic consolidation (`onai-db consolidate`): backup, staging, set-based
identity resolution, batched import with a ledger, verification and reports."""

from __future__ import annotations

from .runner import ConsolidationOptions, run_consolidation
from .verify import Report

__all__ = ["ConsolidationOptions", "Report", "run_consolidation"]
