"""The one error type the service layer raises; the CLI, views and API turn it into messages and statuses."""

from __future__ import annotations

INVALID = "invalid"
NOT_FOUND = "not_found"
EXISTS = "exists"
FORBIDDEN = "forbidden"
UNAVAILABLE = "unavailable"

HTTP_STATUS = {INVALID: 400, NOT_FOUND: 404, EXISTS: 409, FORBIDDEN: 403, UNAVAILABLE: 503}


class ServiceError(Exception):
    """A refusal the user can act on: `code` is machine-readable, `message` one human line, `field` the input at fault."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body
