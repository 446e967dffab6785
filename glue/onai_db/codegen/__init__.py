"""Generators of SQL from third-party metadata (the output is committed as a migration)."""
