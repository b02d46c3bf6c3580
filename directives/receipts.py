"""Checking an agency's receipt: a delivery counts only with a valid signed receipt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from interdict import schemas
from interdict.errors import DocumentError, VerificationError
from interdict.keys import jws


def verify(token: str, *, agency: str, directive_id: str,
           agency_keys: Mapping[str, bytes]) -> dict[str, Any]:
    """The receipt's payload, if ``agency`` signed it for ``directive_id``.

    Raises:
        VerificationError: the receipt is malformed, unsigned by the agency, or about
        another directive or agency.
    """
    parsed = jws.parse(token, jws.TYP_RECEIPT)
    key = agency_keys.get(parsed.kid)
    if key is None:
        raise VerificationError(f"receipt signed by {parsed.kid}, not a key of agency {agency}",
                                code="receipt.unknown_key")
    jws.verify_signature(parsed, key)
    document = jws.parse_payload(parsed)
    try:
        schemas.check("receipt", document)
    except DocumentError as exc:
        raise VerificationError(exc.message, code="receipt.schema") from None
    if document["directive_id"] != directive_id or document["agency"] != agency:
        raise VerificationError(
            f"receipt is for {document['agency']}/{document['directive_id']}, expected "
            f"{agency}/{directive_id}", code="receipt.mismatch")
    return document
