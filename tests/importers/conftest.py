"""The real lists in ../shared/corpus (or $INTERDICT_SHARED/corpus), and an issuer per list.

Tests that need them are skipped, with the reason, where the folder is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interdict import issuers
from interdict.installation import Installation

SHARED = Path(os.environ.get("INTERDICT_SHARED")
              or Path(__file__).resolve().parents[3] / "shared")
CORPUS = SHARED / "corpus"
UN_MEASURES = ["travel.air", "travel.rail", "travel.sea", "credit.loan", "credit.card",
               "permit.business"]
CSL_MEASURES = ["credit.loan", "credit.card", "permit.business", "procurement.contract"]


def _corpus_file(name: str) -> Path:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"the real lists are not here: no {path} (set INTERDICT_SHARED to the folder "
                    "that holds corpus/)")
    return path


@pytest.fixture(scope="session")
def un_file() -> Path:
    return _corpus_file("un_sc_consolidated_2026-02-27.xml")


@pytest.fixture(scope="session")
def csl_file() -> Path:
    return _corpus_file("us_trade_csl_2019.csv")


@pytest.fixture
def list_issuers(installation: Installation) -> Installation:
    """The installation with two list issuers holding local keys: un-sc and us-csl."""
    issuers.add(installation, "un-sc", name="UN list mirror", measures=UN_MEASURES)
    issuers.add(installation, "us-csl", name="US CSL mirror", measures=CSL_MEASURES)
    return installation
