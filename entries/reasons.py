"""The stable reason codes for refusing a published entry (docs/reason-codes.md lists them).

Codes never change meaning; new ones may be added. Each refusal also carries a human detail
naming the field or header at fault.
"""

from __future__ import annotations

REASONS: dict[str, str] = {
    # the JWS itself
    "jws.malformed": "not a compact JWS of three parts",
    "jws.base64": "a part is not unpadded base64url",
    "jws.trailing_data": "whitespace or other data around the token",
    "header.json": "the protected header is not a JSON object (or has duplicate keys)",
    "header.alg": "alg is not Ed25519 (or EdDSA); 'none' and every other algorithm are refused",
    "header.crit": "crit names an extension interdict does not understand",
    "header.kid_missing": "the header has no kid",
    "header.kid_unknown": "no key with this kid is in the trust store",
    "header.typ": "typ is not interdict-entry+jws",
    # keys and signatures
    "signature.invalid": "the signature does not verify under the key named by kid",
    "signature.wrong_issuer": "the signing key belongs to someone other than the entry's issuer",
    "key.revoked": "the signing key is revoked",
    "key.outside_validity": "the entry was published outside the signing key's validity window",
    # the payload
    "payload.too_large": "the token exceeds the size limit (96 KiB)",
    "payload.too_deep": "the payload nests deeper than 32 levels",
    "payload.json": "the payload is not UTF-8 JSON",
    "payload.not_object": "the payload is JSON but not an object",
    "payload.duplicate_key": "the payload repeats a key in one object",
    "payload.non_finite": "the payload contains NaN or Infinity",
    "schema.unknown_version": "the payload names a schema interdict does not know",
    "schema.violation": "the payload does not match the entry schema",
    "schema.unknown_field": "the payload has a field the entry schema does not define",
    # authority and policy
    "issuer.unknown": "the issuer is not registered",
    "issuer.measure_not_authorised": "the issuer may not impose one of the measures",
    "entry.issuer_mismatch": "entry_id is not scoped to the issuer that signed it",
    "dates.incoherent": "expires_at is not after effective_from",
    "dates.expired": "the entry had already expired when it arrived",
    "policy.duration": "the measure lasts longer than the policy allows",
    "policy.measure_uncovered": "the measure policy in force does not cover one of the measures",
    "policy.instrument": "the legal instrument may not justify a measure under the policy",
    "policy.extensions": "an extension beyond the number the measure policy allows",
    # the entry gate (entries/gate.py)
    "gate.entry_v1": "an impose or amend in entry v1, which cannot carry the gate: publish v2",
    "gate.decision": "an impose or amend that names no decision imposing it",
    "gate.assessment": "an impose or amend without an individual assessment (40+ characters)",
    "gate.notice": "an impose or amend with neither a notice record nor a notice exemption",
    "gate.notice_incomplete": "the notice did not cover reasons, legal basis, agencies, "
                              "expiry and redress",
    "gate.notice_future": "the notice record is dated after the entry was published: no "
                          "notice was given yet",
    "gate.notice_late": "the notice came after the measure took effect, and no exemption applies",
    "gate.extension_assessment": "an extension that repeats the previous assessment",
    # order
    "revision.replay": "the revision is not newer than the one already accepted",
    "op.unknown_entry": "amend or revoke of an entry interdict never accepted",
    "op.not_active": "amend or revoke of an entry no longer in force",
    "op.conflict": "impose of an entry that is already in force (publish an amend)",
}
