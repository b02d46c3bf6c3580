"""Finding adapters: every adapter, built-in or third-party, is an entry point in the group
``interdict.adapters`` whose name is the manifest's ``adapter`` value."""

from __future__ import annotations

from importlib.metadata import entry_points

from interdict.agencies.base import Adapter, AdapterContext
from interdict.errors import ConfigError

GROUP = "interdict.adapters"


def available() -> dict[str, str]:
    """Adapter name -> the object it points at, for ``agency list`` and error messages."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def adapter_class(name: str) -> type[Adapter]:
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(sorted(available())) or "none"
        raise ConfigError(f"no adapter named {name!r} is installed (entry-point group {GROUP}; "
                          f"installed: {known})", code="adapter.unknown")
    cls = matches[0].load()
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise ConfigError(f"entry point {name!r} ({matches[0].value}) is not an Adapter subclass",
                          code="adapter.invalid")
    return cls


def create(context: AdapterContext) -> Adapter:
    return adapter_class(str(context.manifest["adapter"]))(context)
