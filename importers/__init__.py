"""Importers: an issuer turns the lists it already has into signed entries.

``un_xml`` reads the UN Security Council Consolidated List, ``us_csl`` the US Consolidated
Screening List; each gives a ``Snapshot``. ``import_snapshot`` publishes what a snapshot changes
since the last import (impose, amend, revoke), behind a shrink guard. docs/importing.md has the
mappings and the rules.
"""

from interdict.importers.snapshot import Record, Snapshot
from interdict.importers.state import (
    DEFAULT_VALID_FOR,
    ImportReport,
    import_snapshot,
    shrink_limit,
)

__all__ = ["DEFAULT_VALID_FOR", "ImportReport", "Record", "Snapshot", "import_snapshot",
           "shrink_limit"]
