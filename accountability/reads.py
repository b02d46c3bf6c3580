"""Every read of personal data is an audit event: who read what, and why, never the data.

``subject report`` logs its own read (accountability/subject.py); other commands that show
personal data (``quarantine show`` prints the raw entry as published) call ``record``.
``audit export`` is logged by the exporter itself (``audit.exported``).
"""

from __future__ import annotations

from typing import Any

from interdict.auditlog import log
from interdict.installation import Installation
from interdict.storage import transaction

NOT_GIVEN = "not given"
MAX_PURPOSE = 200


def record(installation: Installation, action: str, purpose: str | None,
           actor: str | None = None, **refs: Any) -> None:
    """Append one read event. ``refs`` are identifiers (a public seq, an entry id), never
    names, dates of birth or identity numbers."""
    text = " ".join((purpose or "").split())[:MAX_PURPOSE] or NOT_GIVEN
    with transaction(installation.db) as session:
        log.append(session, [log.event(action, actor=actor or log.operator(), purpose=text,
                                       **refs)])
