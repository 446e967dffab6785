"""PROVISIONAL matrix adapter for normalize_phone (replaced by the phone branch)."""

from .matrix import FunctionAdapter

ADAPTERS = {
    "public.normalize_phone": FunctionAdapter(
        call=lambda api, actor, cast: api.query(
            actor, "select public.normalize_phone('8 701 123 45 67') as p"
        ),
    ),
}
