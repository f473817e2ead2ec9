"""Mail from Mailferry itself (confirmations, notifications, delay warnings): built here, then queued and
delivered like forwarded mail (same queue, router, retries and message log), signed with the DKIM key of the
sender's domain when one exists (smtp/delivery/senders.py, kind SYSTEM_KIND)."""

from .compose import SystemMessage, compose
from .outbox import SYSTEM_KIND, dispatch, queue_system_message, send_system_message

__all__ = ["SYSTEM_KIND", "SystemMessage", "compose", "dispatch", "queue_system_message", "send_system_message"]
