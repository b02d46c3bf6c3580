"""Keys: Ed25519 key files, JWKs and thumbprints, the JWS profile, and the trust store
(``interdict.keys.truststore``, imported on its own because it writes audit events)."""

from interdict.keys.jwk import public_key_from_pem, public_key_to_pem, thumbprint
from interdict.keys.jws import Signer, canonical_json, digest

__all__ = ["Signer", "canonical_json", "digest", "public_key_from_pem", "public_key_to_pem",
           "thumbprint"]
