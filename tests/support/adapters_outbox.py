"""Matrix adapters for the integrations outbox (queue, logs, Telegram groups, tokens,
monitoring views and the queue / notification functions)."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from .cast import Cast
from .leads import record, unique_phone
from .matrix import FunctionAdapter, TableAdapter
from .postgrest import SERVICE, Actor, PostgrestSession


def _seed(api: PostgrestSession, cast: Cast) -> None:
    """A pending and a dead job with logs, two Telegram groups, one token row."""
    api.query(
        SERVICE,
        "insert into public.outbox_jobs (kind, payload, idempotency_key, status, attempts, last_error, run_after)"
        " values ('sms', '{\"to\": \"+77011234567\", \"text\": \"x\"}', 'matrix/pending', 'pending', 0, null, now()),"
        " ('email', '{\"to\": \"a@example.kz\", \"template\": \"password_changed\"}', 'matrix/dead', 'dead', 8, 'x', null)",
    )
    api.query(
        SERVICE,
        "insert into public.integration_logs (job_id, service_name, action, status, attempt, error_message)"
        " select id, service_name, action, 'failed', 1, 'resend: HTTP 500' from public.outbox_jobs"
        " where idempotency_key like 'matrix/%%'",
    )
    api.query(
        SERVICE,
        "insert into public.telegram_groups (chat_id, group_type, is_active, deactivated_at) values"
        " (-100777, 'leads', true, null), (-100778, 'leads', false, now())",
    )
    api.query(
        SERVICE,
        "insert into public.integration_tokens (service_name, access_token) values ('amocrm', 'matrix')",
    )


def _table(key: tuple[str, ...], samples: list[dict[str, Any]], update_column: str) -> TableAdapter:
    return TableAdapter(
        key=key, insert_samples=lambda cast, actor: samples, update_column=update_column, seed=_seed
    )


def _view(*key: str) -> TableAdapter:
    return TableAdapter(key=key, seed=_seed)


def _rpc(function: str, **args: Any) -> FunctionAdapter:
    def call(api: PostgrestSession, actor: Actor, cast: Cast) -> Any:
        return api.rpc(actor, function, **args)

    return FunctionAdapter(call=call, seed=_seed)


def _lead_notification(api: PostgrestSession, actor: Actor, cast: Cast) -> Any:
    lead = record(api, p_name="Matrix", p_phone=unique_phone(), p_source="expresscourse")
    return api.rpc(actor, "enqueue_lead_notification", p_lead_id=lead["lead_id"])


def _account_email(api: PostgrestSession, actor: Actor, cast: Cast) -> Any:
    return api.rpc(
        actor,
        "enqueue_account_email",
        p_user_id=cast.student.user_id,
        p_template="password_changed",
        p_event_key=f"matrix/{uuid.uuid4()}",
    )


ADAPTERS = {
    "public.outbox_jobs": _table(
        ("id",),
        [{"kind": "sms", "payload": Jsonb({"to": "+7", "text": "t"}), "idempotency_key": "matrix/insert"}],
        "payload",
    ),
    "public.integration_logs": _table(
        ("id",), [{"service_name": "resend", "action": "send_email", "status": "success"}], "error_message"
    ),
    "public.telegram_groups": _table(("id",), [{"chat_id": -100999, "group_type": "leads"}], "title"),
    "public.integration_tokens": _table(
        ("service_name",), [{"service_name": "matrix_provider", "access_token": "x"}], "access_token"
    ),
    "public.integration_daily_stats": _view("service_name", "log_date"),
    "public.integration_recent_errors": _view("id"),
    "public.outbox_queue_stats": _view("kind"),
    "public.outbox_dead_jobs": _view("id"),
    "public.telegram_group_stats": _view("group_type"),
    "public.amocrm_sync_backlog": _view("unsynced"),
    "public.enqueue_outbox_job": FunctionAdapter(
        call=lambda api, actor, cast: api.rpc(
            actor,
            "enqueue_outbox_job",
            p_kind="sms",
            p_payload=Jsonb({"to": "+77011234567", "text": "x"}),
            p_idempotency_key=f"matrix/{uuid.uuid4()}",
        )
    ),
    "public.recover_expired_outbox_leases": _rpc("recover_expired_outbox_leases"),
    "public.claim_outbox_jobs": _rpc("claim_outbox_jobs", p_worker="matrix", p_limit=1),
    "public.complete_outbox_jobs": _rpc("complete_outbox_jobs", p_worker="matrix", p_ids="{0}"),
    "public.fail_outbox_job": _rpc("fail_outbox_job", p_id=0, p_worker="matrix", p_error="x"),
    "public.release_outbox_jobs": _rpc("release_outbox_jobs", p_worker="matrix", p_ids="{0}"),
    "public.extend_outbox_leases": _rpc("extend_outbox_leases", p_worker="matrix", p_ids="{0}"),
    "public.requeue_dead_outbox_jobs": _rpc("requeue_dead_outbox_jobs", p_ids="{0}"),
    "public.prune_integration_history": _rpc("prune_integration_history", p_keep_days=30),
    "public.deactivate_telegram_group": _rpc(
        "deactivate_telegram_group", p_chat_id=-100777, p_reason="matrix", p_bot="leads"
    ),
    "public.move_telegram_chat": _rpc("move_telegram_chat", p_old_chat_id=-100778, p_new_chat_id=-100779),
    "public.enqueue_telegram_notification": _rpc(
        "enqueue_telegram_notification",
        p_group_types="{leads}",
        p_text="matrix",
        p_idempotency_key="matrix/tg",
    ),
    "public.begin_integration_token_refresh": _rpc(
        "begin_integration_token_refresh", p_service="amocrm", p_worker="matrix", p_seen_version=1
    ),
    "public.store_integration_token": _rpc(
        "store_integration_token",
        p_service="amocrm",
        p_access_token="a",
        p_refresh_token="r",
        p_expires_in_seconds=60,
    ),
    "public.abort_integration_token_refresh": _rpc(
        "abort_integration_token_refresh", p_service="amocrm", p_worker="matrix", p_error="x"
    ),
    "public.enqueue_account_email": FunctionAdapter(call=_account_email),
    "public.enqueue_amocrm_lead_sync": _rpc("enqueue_amocrm_lead_sync", p_limit=10),
    "public.enqueue_amocrm_new_lead_syncs": _rpc("enqueue_amocrm_new_lead_syncs", p_limit=10),
    "public.record_amocrm_sync": _rpc("record_amocrm_sync", p_lead_id=uuid.uuid4(), p_contact_id=1),
    "public.enqueue_amocrm_lesson_stage": _rpc("enqueue_amocrm_lesson_stage", p_amocrm_lead_id=1, p_lesson=1),
    "public.enqueue_lead_notification": FunctionAdapter(call=_lead_notification),
}
