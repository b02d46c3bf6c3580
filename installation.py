"""One installation at run time: its home, databases, own keys and agency adapters.

Every command and flow opens the installation through ``Installation.open``; it caches
per process what is costly to build (database engines, decrypted keys, adapters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from interdict.agencies import Adapter, AdapterContext, create
from interdict.auditlog import log
from interdict.auditlog.note import NoteSigner
from interdict.errors import ConfigError
from interdict.home import Home
from interdict.keys import jws, keyfile, truststore
from interdict.publicdb import PublicDatabase
from interdict.storage import create_schema, engine_for, transaction
from interdict.storage.models import Agency

ENGINE_KEY = "engine.key"  # signs directives
LOG_KEY = "log.key"  # signs checkpoints


@dataclass
class Installation:
    home: Home
    _adapters: dict[str, Adapter] = field(default_factory=dict)

    @classmethod
    def open(cls, home: Home) -> Installation:
        home.settings()  # raises a clear ConfigError when the home does not exist
        return cls(home)

    @classmethod
    def init(cls, home: Home) -> Installation:
        """Create the home, the database schema and interdict's own keys (idempotent)."""
        home.create()
        installation = cls(home)
        with transaction(installation.db) as session:
            for kind, filename in (("engine", ENGINE_KEY), ("log", LOG_KEY)):
                path = home.keys_dir / filename
                key = keyfile.load(path) if path.exists() else keyfile.generate(path)
                truststore.register_key(session, owner_kind=kind, owner_id="interdict",
                                        public_key=jws.Signer(key).public_key,
                                        actor=log.operator())
        return installation

    @cached_property
    def db(self) -> Engine:
        engine = engine_for(self.home.database_url)
        create_schema(engine)
        return engine

    @cached_property
    def public(self) -> PublicDatabase:
        return PublicDatabase(self.home.public_database_url)

    @cached_property
    def engine_signer(self) -> jws.Signer:
        return jws.Signer(keyfile.load(self.home.keys_dir / ENGINE_KEY))

    @cached_property
    def log_signer(self) -> NoteSigner:
        return NoteSigner(self.home.log_origin, keyfile.load(self.home.keys_dir / LOG_KEY))

    def issuer_key_path(self, issuer: str) -> Path:
        return self.home.keys_dir / f"issuer-{issuer}.key"

    def issuer_signer(self, issuer: str) -> jws.Signer:
        path = self.issuer_key_path(issuer)
        if not path.exists():
            raise ConfigError(f"no local signing key for issuer {issuer!r} at {path}: this issuer "
                              "signs with its own tools (publish --signed FILE)",
                              code="issuer.no_local_key")
        return jws.Signer(keyfile.load(path))

    def agency_context(self, manifest: dict[str, object]) -> AdapterContext:
        with transaction(self.db) as session:
            engine_keys = truststore.TrustSnapshot.load(session).keys_of("engine")
        return AdapterContext(manifest=manifest,
                              data_dir=self.home.agencies_dir / str(manifest["id"]),
                              engine_keys=engine_keys,
                              engine_sign=lambda message: self.engine_signer.raw_sign(message))

    def adapter(self, agency_id: str) -> Adapter:
        if agency_id not in self._adapters:
            with transaction(self.db) as session:
                row = session.get(Agency, agency_id)
                if row is None:
                    raise ConfigError(f"no agency {agency_id!r} is registered",
                                      code="agency.unknown")
                manifest = dict(row.manifest)
            self._adapters[agency_id] = create(self.agency_context(manifest))
        return self._adapters[agency_id]

    def agency_ids(self, *, enabled_only: bool = True) -> list[str]:
        query = sa.select(Agency.id).order_by(Agency.id)
        if enabled_only:
            query = query.where(Agency.enabled == sa.true())
        with transaction(self.db) as session:
            return list(session.execute(query).scalars())
