"""Clients for the providers the outbox worker calls (Resend, Mobizon, Telegram, AmoCRM,
Supabase Auth). Each turns HTTP outcomes into :class:`Delivery` or a :class:`ProviderError`
whose message is safe to log (status + the provider's error code, never bodies or keys)."""
