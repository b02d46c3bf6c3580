"""Routing and minimisation, as pure functions."""

from __future__ import annotations

from interdict.directives import AgencyRoute, directive_id, minimise, route

TRAVEL = AgencyRoute("travel", frozenset({"travel.air", "travel.rail"}),
                     ("type", "names", "identifiers"), frozenset({"passport"}))
LOANS = AgencyRoute("loans", frozenset({"credit.loan"}), ("names", "identifiers"), None)
PERMITS = AgencyRoute("permits", frozenset({"permit.business"}), ("names",), None)
ALL = [TRAVEL, LOANS, PERMITS]


def actions(routes: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {r.agency.id: r.action for r in routes}


def test_impose_goes_to_concerned_agencies_with_their_measures_only() -> None:
    routes = route("impose", [{"type": "travel.air"}, {"type": "credit.loan"}], set(), ALL)
    assert actions(routes) == {"travel": "impose", "loans": "impose"}
    assert {r.agency.id: r.measures for r in routes}["loans"] == [{"type": "credit.loan"}]


def test_amend_amends_holders_imposes_newcomers_and_lifts_the_dropped() -> None:
    routes = route("amend", [{"type": "travel.air"}, {"type": "permit.business"}],
                   {"travel", "loans"}, ALL)
    assert actions(routes) == {"travel": "amend", "permits": "impose", "loans": "lift"}


def test_revoke_lifts_exactly_the_holders() -> None:
    assert actions(route("revoke", [], {"loans"}, ALL)) == {"loans": "lift"}
    assert route("revoke", [], set(), ALL) == []


def test_minimise_keeps_only_allowed_fields_and_schemes() -> None:
    subject = {"type": "person", "names": [{"value": "A", "kind": "primary"}],
               "birth_dates": [{"date": "1980"}],
               "identifiers": [{"scheme": "passport", "value": "P1"},
                               {"scheme": "national-id", "value": "N1"}]}
    assert minimise(subject, TRAVEL) == {"type": "person", "names": subject["names"],
                                         "identifiers": [{"scheme": "passport", "value": "P1"}]}
    assert minimise(subject, PERMITS) == {"names": subject["names"]}
    only_national = {**subject, "identifiers": [{"scheme": "national-id", "value": "N1"}]}
    assert "identifiers" not in minimise(only_national, TRAVEL)


def test_directive_ids_are_deterministic_and_distinct() -> None:
    first = directive_id("court-7", "court-7/1", 1, "travel", "impose")
    assert first == directive_id("court-7", "court-7/1", 1, "travel", "impose")
    others = {directive_id("court-7", "court-7/1", 2, "travel", "impose"),
              directive_id("court-7", "court-7/1", 1, "loans", "impose"),
              directive_id("court-7", "court-7/1", 1, "travel", "lift")}
    assert first not in others and len(others) == 3
