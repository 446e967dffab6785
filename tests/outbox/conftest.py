"""Fixtures of the outbox tests (fake providers, a clean queue): see support/outbox_fixtures.py."""

from support.outbox_fixtures import clean_outbox, fake, fake_server, old_leads, queue, service_conn

__all__ = ["clean_outbox", "fake", "fake_server", "old_leads", "queue", "service_conn"]
