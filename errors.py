"""interdict's exceptions: each has a stable ``code`` and a message a person can act on.

The tree is split by who is at fault, so callers can tell "the data we were sent is bad" from
"a system we called failed" from "the operator asked for something impossible"::

    InterdictError                 code, message; the CLI prints "error[code]: message", exits 1
    ├── ConfigError                the home, a setting or a key file is missing or wrong
    ├── UsageError                 the command was asked for something it cannot do
    ├── DocumentError              a document we were given is bad (schema, JSON, dates, ...)
    ├── VerificationError          a signature, key or trust check failed
    ├── DeliveryError              an agency adapter could not be reached or misbehaved
    └── AuditError                 the audit log is inconsistent or a proof does not hold
"""

from __future__ import annotations


class InterdictError(Exception):
    """Root of every error interdict raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(InterdictError):
    code = "config"


class UsageError(InterdictError):
    code = "usage"


class DocumentError(InterdictError):
    code = "document"


class VerificationError(InterdictError):
    code = "verification"


class DeliveryError(InterdictError):
    code = "delivery"


class AuditError(InterdictError):
    code = "audit"
