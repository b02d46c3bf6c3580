"""What an agency checks before acting on a directive: interdict's signature, the schema, and
that the directive is addressed to it. Shared by the simulated agencies and the reference
webhook receiver, so every agency-side implementation refuses the same things.

Every version of the directive schema is accepted side by side (v1, and v2 which adds the
digest of the measure policy that routed it): a directive is checked against the version it
names, so one issued before an upgrade and still in the outbox is applied as before."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from interdict import schemas
from interdict.errors import VerificationError
from interdict.keys import jws


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
