"""Ed25519 private keys on disk: generated here, encrypted, readable only by their owner.

Files are OpenSSH private keys encrypted with a passphrase through bcrypt-pbkdf (the format
``ssh-keygen`` writes, so operators can inspect and back them up with tools they know), written
with mode 0600. The passphrase comes from ``INTERDICT_KEY_PASSPHRASE``; without it the documented
demo passphrase is used, and ``using_demo_passphrase()`` lets the CLI say so.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict.errors import ConfigError

PASSPHRASE_ENV = "INTERDICT_KEY_PASSPHRASE"
DEMO_PASSPHRASE = "interdict-demo-passphrase"
# bcrypt-pbkdf rounds: 16 is OpenSSH's default (~0.15 s per load here). Test suites may lower it.
KDF_ROUNDS_ENV = "INTERDICT_KEY_KDF_ROUNDS"


def using_demo_passphrase() -> bool:
    return not os.environ.get(PASSPHRASE_ENV)


def _passphrase() -> bytes:
    return (os.environ.get(PASSPHRASE_ENV) or DEMO_PASSPHRASE).encode()


def _kdf_rounds() -> int:
    return max(1, int(os.environ.get(KDF_ROUNDS_ENV, "16")))


def generate(path: Path) -> Ed25519PrivateKey:
    """Create a new key at ``path`` (refusing to overwrite one) and return it."""
    key = Ed25519PrivateKey.generate()
    encryption = (
        serialization.PrivateFormat.OpenSSH.encryption_builder()
        .kdf_rounds(_kdf_rounds())
        .build(_passphrase())
    )
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"a key already exists at {path}; refusing to overwrite it",
                          code="key.exists") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return key


def load(path: Path) -> Ed25519PrivateKey:
    """Read and decrypt the key at ``path``.

    Raises:
        ConfigError: the file is missing, readable by others, or the passphrase is wrong.
    """
    stat = _stat(path)
    return _load_cached(str(path), stat.st_mtime_ns, _passphrase())


def _stat(path: Path) -> os.stat_result:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"no private key at {path}", code="key.missing") from None
    if stat.st_mode & 0o077:
        raise ConfigError(
            f"private key {path} is readable by other users (mode {stat.st_mode & 0o777:o}); "
            f"run `chmod 600 {path}`",
            code="key.permissions",
        )
    return stat


@lru_cache(maxsize=64)
def _load_cached(path: str, _mtime_ns: int, passphrase: bytes) -> Ed25519PrivateKey:
    # Decryption is deliberately slow (bcrypt), so a process decrypts each key file once.
    try:
        key = serialization.load_ssh_private_key(Path(path).read_bytes(), passphrase)
    except ValueError as exc:
        raise ConfigError(
            f"cannot decrypt private key {path}: wrong {PASSPHRASE_ENV}? ({exc})",
            code="key.passphrase",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key", code="key.type")
    return key
