"""onai-db: the onAI Academy database layer (Supabase migrations, RLS and thin glue)."""

__version__ = "0.1.0"
