"""Keyed pseudonyms for the audit log: who was read about, without saying who.

The audit log is public to auditors and kept forever, so a read of personal data is logged
with ``HMAC-SHA256(installation key, identifier)`` rather than the identifier or a plain hash
(a plain hash of a passport number is reversed by trying every number). Only someone holding
the installation's pseudonym key can answer "was this person's data read, and by whom?".
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from interdict.home import Home

KEY_FILE = "pseudonym.key"


def _key(home: Home) -> bytes:
    path: Path = home.keys_dir / KEY_FILE
    if not path.exists():
        home.keys_dir.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two commands creating the key at once keep one of them, never a mix
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    return path.read_bytes()


def pseudonym(home: Home, value: str) -> str:
    """``hmac-sha256:`` and the hex digest of ``value`` under the installation's key."""
    return "hmac-sha256:" + hmac.new(_key(home), value.encode(), hashlib.sha256).hexdigest()
