"""The interdict home: the folder that holds one installation's databases, keys and settings.

Resolution order: an explicit ``--home``, then ``INTERDICT_HOME``, then ``./.interdict``.
Database URLs default to SQLite files inside the home and can be moved elsewhere (PostgreSQL)
with ``INTERDICT_DATABASE_URL`` and ``INTERDICT_PUBLIC_DATABASE_URL``.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from interdict.errors import ConfigError

SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class Home:
    """Paths and settings of one installation."""

    root: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> Home:
        chosen = explicit or os.environ.get("INTERDICT_HOME") or ".interdict"
        return cls(Path(chosen).expanduser().resolve())

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def agencies_dir(self) -> Path:
        return self.root / "agencies"

    @property
    def database_url(self) -> str:
        return os.environ.get("INTERDICT_DATABASE_URL") or f"sqlite:///{self.root / 'interdict.db'}"

    @property
    def public_database_url(self) -> str:
        return os.environ.get("INTERDICT_PUBLIC_DATABASE_URL") or (
            f"sqlite:///{self.root / 'public.db'}"
        )

    @property
    def exists(self) -> bool:
        return (self.root / SETTINGS_FILE).is_file()

    def create(self) -> None:
        """Create the folders and the settings file (idempotent)."""
        for folder in (self.root, self.keys_dir, self.agencies_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.keys_dir.chmod(0o700)
        settings_path = self.root / SETTINGS_FILE
        if not settings_path.exists():
            # The log origin names this installation's log in every checkpoint; it must be
            # unique so checkpoints of two installations can never be confused.
            origin = f"interdict.local/log/{secrets.token_hex(6)}"
            settings_path.write_text(json.dumps({"log_origin": origin}, indent=2) + "\n")

    def settings(self) -> dict[str, object]:
        try:
            loaded: dict[str, object] = json.loads((self.root / SETTINGS_FILE).read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"no interdict home at {self.root}: run `interdict init` or `interdict demo`, "
                "or point --home / INTERDICT_HOME at an existing one",
                code="home.missing",
            ) from None
        return loaded

    @property
    def log_origin(self) -> str:
        return str(self.settings()["log_origin"])
