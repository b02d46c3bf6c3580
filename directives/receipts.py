"""Checking an agency's receipt: a delivery counts only with a valid signed receipt.

Receipts name their schema: ``interdict/receipt/v1`` (applied, rejected, duplicate) or
``interdict/receipt/v2``, which echoes the directive's ``action`` and adds the status
``flagged`` (the agency verified the directive but will not act on it, with a reason code
from :data:`FLAG_CODES`) and, on lift receipts, ``erased``. Both stay valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from interdict import schemas
from interdict.errors import DocumentError, VerificationError
from interdict.keys import jws, offload

FLAGGED_LIFT = "receipt.flagged_lift"
VERSIONS = (1, 2)
LATEST = 2
#: the closed list of reasons an agency may flag a directive for (receipt v2's flag.code;
#: docs/documents.md says what each means)
FLAG_CODES: tuple[str, ...] = tuple(
    schemas.load("receipt", 2)["$defs"]["flag"]["properties"]["code"]["enum"])


def version_of(document: Mapping[str, Any]) -> int:
    """The receipt schema version the document names.

    Raises:
        VerificationError: ``receipt.schema`` when it names none this interdict reads.
    """
    named = document.get("schema")
    for version in VERSIONS:
        if named == schemas.document_schema("receipt", version):
            return version
    raise VerificationError(f"receipt names schema {named!r}; interdict reads "
                            + ", ".join(schemas.document_schema("receipt", v) for v in VERSIONS),
                            code="receipt.schema")


# The member of a receipt tombstone's ``kept`` that holds the flag's code (erasure.py).
FLAG_CODE_KEPT = "flag_code"


def flag_of(document: Mapping[str, Any]) -> dict[str, str | None] | None:
    """The flag (code and detail) of a flagged receipt, else None. For a receipt erased after
    retention (its payload is the tombstone's ``kept``), the code it kept and no detail (a
    detail may name the person)."""
    if document.get("status") != "flagged":
        return None
    flag = document.get("flag")
    if isinstance(flag, Mapping):
        return dict(flag)
    code = document.get(FLAG_CODE_KEPT)
    return {"code": code, "detail": None} if isinstance(code, str) else None


def verify(token: str, *, agency: str, directive_id: str,
           agency_keys: Mapping[str, bytes], action: str | None = None,
           verified: offload.Verified = offload.NOTHING) -> dict[str, Any]:
    """The receipt's payload, if ``agency`` signed it for ``directive_id`` (and, when
    ``action`` is given and the receipt names one, for a directive of that action).
    ``verified``: signatures a worker process checked already (keys/offload.py).

    Raises:
        VerificationError: the receipt is malformed, unsigned by the agency, or about
        another directive or agency (``receipt.mismatch``); ``receipt.flagged_lift`` when it
        flags a lift, which no agency may refuse (the caller decides what that means).
    """
    parsed = jws.parse(token, jws.TYP_RECEIPT)
    key = agency_keys.get(parsed.kid)
    if key is None:
        raise VerificationError(f"receipt signed by {parsed.kid}, not a key of agency {agency}",
                                code="receipt.unknown_key")
    if not verified.covers(token, key):
        jws.verify_signature(parsed, key)
    document = jws.parse_payload(parsed)
    if not isinstance(document, dict):
        raise VerificationError("receipt payload is not a JSON object", code="receipt.schema")
    answered = action if action is not None else document.get("action")
    if document.get("status") == "flagged" and answered == "lift":
        _mismatch(document, agency, directive_id)
        flag = flag_of(document) or {}
        raise VerificationError(
            f"agency {agency} flagged lift {directive_id} ({flag.get('code', 'no code')}): a "
            "lift cannot be flagged, the restriction must always be removable",
            code=FLAGGED_LIFT)
    try:
        schemas.check("receipt", document, version_of(document))
    except DocumentError as exc:
        raise VerificationError(exc.message, code="receipt.schema") from None
    _mismatch(document, agency, directive_id)
    if action is not None and document.get("action", action) != action:
        raise VerificationError(
            f"receipt answers a {document['action']} directive; {directive_id} is a {action}",
            code="receipt.mismatch")
    return document


def _mismatch(document: Mapping[str, Any], agency: str, directive_id: str) -> None:
    if document.get("directive_id") != directive_id or document.get("agency") != agency:
        raise VerificationError(
            f"receipt is for {document.get('agency')}/{document.get('directive_id')}, expected "
            f"{agency}/{directive_id}", code="receipt.mismatch")
