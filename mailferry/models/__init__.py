"""The schema, shared by app/, smtp/ and the worker. Changes go through alembic (migrations/)."""

from .alias import CATCH_ALL, Alias
from .base import Base, utcnow
from .domain import DkimKey, Domain
from .message import Delivery, DeliveryAttempt, Message
from .stats import DailyStat, RouteStat
from .user import ROLE_ADMIN, ROLE_OWNER, ApiToken, User

__all__ = [
    "Alias", "ApiToken", "Base", "CATCH_ALL", "DailyStat", "Delivery", "DeliveryAttempt", "DkimKey",
    "Domain", "Message", "ROLE_ADMIN", "ROLE_OWNER", "RouteStat", "User", "utcnow",
]
