"""CLI command groups, one module per job; each exposes ``register(app)``."""
