"""The schema, shared by app/, smtp/ and the worker. Changes go through alembic (migrations/)."""

from .alias import CATCH_ALL, Alias
from .audit import AuditEvent
from .base import Base, utcnow
from .domain import DkimKey, Domain
from .mailbox import BounceEvent, Mailbox
from .message import Delivery, DeliveryAttempt, Message
from .notification import Notification
from .stats import DailyStat, RouteStat
from .user import ROLE_ADMIN, ROLE_OWNER, ApiToken, RecoveryCode, User

__all__ = [
    "Alias", "ApiToken", "AuditEvent", "Base", "BounceEvent", "CATCH_ALL", "DailyStat", "Delivery", "DeliveryAttempt",
    "DkimKey", "Domain", "Mailbox", "Message", "Notification", "ROLE_ADMIN", "ROLE_OWNER", "RecoveryCode",
    "RouteStat", "User", "utcnow",
]
