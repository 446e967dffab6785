"""Matrix adapter for public.normalize_phone (a pure function: every caller gets the same answer)."""

from __future__ import annotations

from typing import Any

from .cast import Cast
from .matrix import FunctionAdapter
from .postgrest import Actor, PostgrestSession


def _call(api: PostgrestSession, actor: Actor, cast: Cast) -> Any:
    rows = api.rpc(actor, "normalize_phone", p_phone="+7 (701) 123-45-67")
    assert rows == [{"normalize_phone": "+77011234567"}], rows
    return rows


ADAPTERS = {
    "public.normalize_phone": FunctionAdapter(call=_call),
}
