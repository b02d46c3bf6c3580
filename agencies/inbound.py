"""What an agency checks before acting on a directive: interdict's signature, the schema, and
that the directive is addressed to it; and the receipt it answers with. Shared by the
simulated agencies and the reference webhook receiver, so every agency-side implementation
refuses the same things and answers in the same shape.

Every version of the directive schema is accepted side by side (v1, and v2 which adds the
digest of the measure policy that routed it): a directive is checked against the version it
names, so one issued before an upgrade and still in the outbox is applied as before."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from interdict import schemas
from interdict.errors import VerificationError
from interdict.keys import jws
from interdict.storage.types import utcnow


def verify_directive(token: str, *, agency: str,
                     engine_keys: Mapping[str, bytes]) -> dict[str, Any]:
    """The directive's payload, once it is proven interdict's and addressed to ``agency``.

    Raises:
        VerificationError: malformed, signed by an unknown key, not verifying, or for another
        agency.
        DocumentError: the payload names no directive schema version interdict knows, or
        does not match the one it names.
    """
    parsed = jws.parse(token, jws.TYP_DIRECTIVE)
    key = engine_keys.get(parsed.kid)
    if key is None:
        raise VerificationError(f"directive signed by unknown key {parsed.kid}",
                                code="header.kid_unknown")
    jws.verify_signature(parsed, key)
    document = jws.parse_payload(parsed)
    schemas.check("directive", document, schemas.declared_version("directive", document))
    if document["agency"] != agency:
        raise VerificationError(f"directive is addressed to {document['agency']!r}",
                                code="directive.wrong_agency")
    return document


# -- the answer: a receipt (v2) --------------------------------------------------------------

@dataclass(frozen=True)
class Flag:
    """Why an agency will not act on a directive it verified: a code of the closed list
    (``interdict.directives.receipts.FLAG_CODES``) and a sentence for people. A lift can
    never be flagged."""

    code: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "detail": self.detail[:4000]}


def receipt_document(directive_id: str, agency: str, status: str, *, action: str | None = None,
                     detail: str | None = None, flag: Flag | None = None,
                     erased: bool | None = None) -> dict[str, Any]:
    """A receipt v2 document, ready to sign (``typ interdict-receipt+jws``).

    ``action`` is the directive's (required unless ``rejected``: a directive that did not
    verify may be unreadable); ``flag`` goes with status ``flagged``; ``erased`` only on a lift:
    True when the agency deleted what it held about the subject for that entry.
    """
    document: dict[str, Any] = {
        "schema": schemas.document_schema("receipt"), "directive_id": directive_id,
        "agency": agency, "status": status, "at": utcnow().isoformat().replace("+00:00", "Z")}
    if action is not None:
        document["action"] = action
    if detail:
        document["detail"] = detail[:4000]
    if flag is not None:
        document["flag"] = flag.to_json()
    if erased is not None:
        document["erased"] = erased
    return document
