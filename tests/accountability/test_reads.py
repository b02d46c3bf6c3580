"""Every read of personal data is an audit event naming actor and purpose, without the data."""

from __future__ import annotations

import json

import pytest

from interdict.cli import main
from interdict.installation import Installation
from tests.accountability.conftest import Make, events, publish, sync
from tests.accountability.test_subject import PERSONAL


def test_quarantine_show_is_an_audited_read(installation: Installation, prefect_api: str,
                                            make_entry: Make,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (seq,) = publish(installation, make_entry(entry_id="court-7/bad", redress=None))
    sync(installation)
    home = ["--home", str(installation.home.root)]
    assert main([*home, "quarantine", "show", str(seq), "--purpose", "ticket 4411"]) == 0
    assert "raw" in capsys.readouterr().out
    assert main([*home, "quarantine", "show", str(seq), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seq"] == seq
    first, second = events(installation, "quarantine.read")
    assert first["refs"] == {"seq": seq, "purpose": "ticket 4411"}
    assert second["refs"]["purpose"] == "not given"
    assert first["actor"].startswith("operator:")
    logged = json.dumps(events(installation), ensure_ascii=False)
    assert not [p for p in PERSONAL if p in logged]
    # a seq that is not in quarantine shows nothing and logs no read
    assert main([*home, "quarantine", "show", "999"]) == 1
    assert len(events(installation, "quarantine.read")) == 2
