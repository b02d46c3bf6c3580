"""The conformance kit: proof that an adapter behaves before it receives one real directive.

``run(manifest)`` opens a sandbox (a temporary data folder and a throwaway engine key that the
adapter is told to trust), delivers generated, signed directives about made-up entries through
the same ``Adapter.deliver`` interdict calls, and reports one named check at a time, each
passed or failed with the reason:

    manifest             the manifest matches its schema and names an installed adapter
    protocol             the adapter subclasses Adapter, keeps its deliver/holdings wrappers,
                         and can be constructed
    receipt-keys         there is a key to check receipts against (the manifest's public_keys,
                         or the key the adapter provisions for itself)
    impose               two impositions are applied, with valid signed receipts, and held
    amend                an amendment is applied and replaces the imposition in holdings()
    duplicate            a repeat (alone, superseded, or twice in one batch) is answered
                         ``duplicate`` and changes nothing
    lift                 a lift is applied (never flagged: a restriction must always be
                         removable) and the entry leaves holdings(); the detail says whether
                         the receipt confirmed deleting the subject's data (``erased``)
    amend-before-impose  an amend that overtook its impose is applied; the late impose of
                         the older revision does not replace it
    lift-unknown         a lift of an entry never imposed is answered, holds nothing, and the
                         late impose it overtook does not bring the restriction back
    reroute              a measure policy took the entry from the agency and gave it back: the
                         lift and the new impose of the same revision (issued later, with ids of
                         their own) are applied in order and the entry is held again
    directive-v1         a directive of schema directive/v1 (issued before interdict wrote v2,
                         still in the outbox) is applied like a v2 one
    bad-signature        a tampered directive and one signed by an unknown key are rejected
    wrong-agency         a directive addressed to another agency is rejected
    holdings             holdings() lists exactly the directives in force, each once
    failure-reported     with its storage unusable, the adapter fails with DeliveryError (or
                         really does not need that storage); it never answers "applied" for
                         what it did not keep

Every receipt, in every check, must be a JWS signed by one of the keys ``receipt-keys`` named,
for the right directive and agency, valid under receipt v1 or v2 (v2 echoes the directive's
action, which must be the right one). Third parties run the kit in their own CI with
``interdict agency test manifest.json`` (exit status 1 on any failure) or as a pytest plugin,
one test per check (see ``pytest_generate_tests`` at the end of this module).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict import schemas
from interdict.accountability.policy import Policy, default
from interdict.agencies.base import Adapter, AdapterContext
from interdict.agencies.registry import adapter_class
from interdict.directives import receipts
from interdict.directives.document import Cause, build, iso
from interdict.directives.routing import AgencyRoute, Route
from interdict.errors import DeliveryError, DocumentError, InterdictError
from interdict.keys import jws
from interdict.keys.jwk import b64u, public_key_from_pem, thumbprint, unb64u
from interdict.storage.types import utcnow

ISSUER = "conformance-kit"


@dataclass(frozen=True)
class Check:
    """One named expectation, whether it held, and why (or why not)."""

    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class Report:
    agency: str
    adapter: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        passed = len(self.checks) - len(self.failed)
        line = f"{passed} of {len(self.checks)} checks passed"
        if self.failed:
            line += "; failed: " + ", ".join(c.name for c in self.failed)
        return line

    def to_json(self) -> dict[str, Any]:
        return {"agency": self.agency, "adapter": self.adapter, "ok": self.ok,
                "checks": [c.to_json() for c in self.checks]}


class Failed(Exception):
    """An expectation of a check did not hold; the message says which and why."""


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest file as a document (not yet checked against its schema).

    Raises:
        DocumentError: the file is missing, or not one strict JSON object.
    """
    try:
        document = jws.strict_json(path.read_bytes())
    except OSError as exc:
        raise DocumentError(f"cannot read manifest {path}: {exc.strerror}",
                            code="manifest.unreadable") from None
    except InterdictError as exc:
        raise DocumentError(f"manifest {path} is not valid JSON: {exc.message}",
                            code="manifest.json") from None
    if not isinstance(document, dict):
        raise DocumentError(f"manifest {path} is not a JSON object", code="manifest.json")
    return document


# -- the sandbox ----------------------------------------------------------------------------

class Sandbox:
    """An adapter under test: its own temporary folder, a throwaway engine key it trusts, the
    keys its receipts must verify under, and a factory of signed directives.

    Third parties may use it for tests of their own (what their system does on an impose)::

        with Sandbox.open(manifest) as box:
            box.deliver([box.directive("impose", "case-1")])
            ...  # ask your system about box.identifier("case-1")
    """

    def __init__(self, manifest: Mapping[str, Any], folder: Path,
                 cls: type[Adapter]) -> None:
        self.manifest = copy.deepcopy(dict(manifest))
        self.folder = folder
        self.cls = cls
        self.engine = jws.Signer(Ed25519PrivateKey.generate())
        # routed as the default policy for this one agency would route it
        self.route = replace(AgencyRoute.from_manifest(self.manifest),
                             policy=Policy.of(default([self.manifest])).digest)
        self.now = utcnow()
        self.receipt_keys: dict[str, bytes] = {}
        self.key_sources: list[str] = []
        self._adapter: Adapter | None = None

    @classmethod
    @contextmanager
    def open(cls, manifest: Mapping[str, Any],
             adapter: type[Adapter] | None = None) -> Iterator[Sandbox]:
        """A ready sandbox (keys found, adapter constructed), removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="interdict-conformance-") as folder:
            box = cls(manifest, Path(folder), adapter or adapter_class(str(manifest["adapter"])))
            try:
                box.find_receipt_keys()
                yield box
            finally:
                box.close()

    @property
    def agency_id(self) -> str:
        return self.route.id

    def context(self, data_dir: Path) -> AdapterContext:
        return AdapterContext(manifest=self.manifest, data_dir=data_dir,
                              engine_keys={self.engine.kid: self.engine.public_key},
                              engine_sign=self.engine.raw_sign)

    @property
    def data_dir(self) -> Path:
        return self.folder / "agency"

    @property
    def adapter(self) -> Adapter:
        if self._adapter is None:
            self._adapter = self.cls(self.context(self.data_dir))
        return self._adapter

    def find_receipt_keys(self) -> None:
        """The manifest's keys, and the key a self-keyed adapter provisions for itself (the
        one onboarding would record in the manifest)."""
        for n, pem in enumerate(self.manifest.get("public_keys", [])):
            raw = public_key_from_pem(pem)  # VerificationError names a bad PEM
            self.receipt_keys[thumbprint(raw)] = raw
            self.key_sources.append(f"public_keys[{n}] {thumbprint(raw)}")
        provision: Callable[[AdapterContext], bytes] | None = getattr(self.cls, "provision", None)
        if callable(provision):
            raw = provision(self.context(self.data_dir))
            self.receipt_keys[thumbprint(raw)] = raw
            self.key_sources.append(f"the key the adapter provisioned, {thumbprint(raw)}")

    def close(self) -> None:
        if self._adapter is not None:
            self._adapter.close()

    # -- directives -----------------------------------------------------------------------

    def identifier(self, case: str) -> dict[str, str]:
        """The made-up subject's identifier in case ``case`` (one per scheme it may see)."""
        schemes = sorted(self.route.identifier_schemes or {"national-id"})
        return {"scheme": schemes[0], "value": f"KIT-{case}"}

    def entry(self, case: str) -> dict[str, Any]:
        schemes = sorted(self.route.identifier_schemes or {"national-id"})
        return {
            "subject": {"type": "person",
                        "names": [{"value": f"Conformance Subject {case}", "kind": "primary"}],
                        "identifiers": [{"scheme": s, "value": f"KIT-{case}"} for s in schemes],
                        "birth_dates": [{"date": "1970-01-01"}], "nationalities": ["ZZ"],
                        "addresses": [{"city": "Testville", "country": "ZZ"}]},
            "measures": [{"type": m} for m in sorted(self.route.measures)],
            "legal_basis": {"instrument": "Conformance test", "decision": f"KIT/{case}"},
            "reason": "generated by the interdict conformance kit",
            "effective_from": iso(self.now - timedelta(days=1)),
            "expires_at": iso(self.now + timedelta(days=365)),
            "redress": {"authority": "Conformance kit", "contact": "kit@interdict.invalid"},
        }

    def directive(self, action: str, case: str, revision: int = 1, *,
                  agency: str | None = None, signer: jws.Signer | None = None,
                  tamper: bool = False, reroute: str | None = None,
                  issued_at: datetime | None = None, version: int | None = None) -> str:
        """A signed directive for made-up entry ``case``: ``reroute`` as when a policy
        application caused it, ``version`` 1 for a directive/v1 one."""
        document = self.entry(case)
        route = self.route if agency is None else replace(self.route, id=agency)
        measures = route.concerned_measures(document["measures"]) if action != "lift" else []
        entry_id = f"{ISSUER}/{case}"
        cause = Cause(ISSUER, entry_id, revision, jws.digest(f"{entry_id}#{revision}"), document,
                      document["reason"], document["effective_from"], reroute)
        directive = build(Route(route, action, measures), cause, issued_at or self.now)
        if version == 1:
            directive = {k: v for k, v in directive.items() if k != "policy"}
            directive["schema"] = schemas.document_schema("directive", 1)
        token = (signer or self.engine).sign_document(directive, jws.TYP_DIRECTIVE)
        return _tampered(token) if tamper else token

    # -- talking to the adapter -----------------------------------------------------------

    def deliver(self, tokens: Sequence[str]) -> list[dict[str, Any]]:
        """Deliver; return the verified receipts, in order.

        Raises:
            Failed: deliver() failed, or a receipt is missing, unsigned, or about something
            else.
        """
        try:
            answers = self.adapter.deliver(tokens)
        except DeliveryError as exc:
            raise Failed(f"deliver() raised DeliveryError [{exc.code}]: {exc.message}") from None
        except Exception as exc:
            raise Failed(f"deliver() raised {type(exc).__name__} instead of DeliveryError: "
                         f"{exc}") from None
        found = []
        for token, answer in zip(tokens, answers, strict=True):
            claimed = directive_id_of(token)
            if isinstance(answer, DeliveryError):
                raise Failed(f"delivering {claimed} failed [{answer.code}]: {answer.message}")
            try:
                found.append(receipts.verify(answer, agency=self.agency_id,
                                             directive_id=claimed,
                                             agency_keys=self.receipt_keys,
                                             action=action_of(token)))
            except InterdictError as exc:
                raise Failed(f"the receipt for {claimed} is not valid [{exc.code}]: "
                             f"{exc.message}; receipts must be JWS signed by "
                             f"{self.keys_named()}") from None
        return found

    def holdings(self) -> list[str]:
        try:
            return self.adapter.holdings()
        except DeliveryError as exc:
            raise Failed(f"holdings() raised DeliveryError [{exc.code}]: {exc.message}") \
                from None

    def keys_named(self) -> str:
        return " or ".join(self.key_sources) or "no key at all"


def directive_id_of(token: str) -> str:
    document: dict[str, Any] = orjson.loads(unb64u(token.split(".")[1]))
    return str(document["directive_id"])


def action_of(token: str) -> str:
    document: dict[str, Any] = orjson.loads(unb64u(token.split(".")[1]))
    return str(document["action"])


def _tampered(token: str) -> str:
    """The same directive with its reason altered after signing: the signature no longer
    matches the payload, though the kid is the trusted one."""
    head, body, signature = token.split(".")
    document = orjson.loads(unb64u(body))
    document["reason"] = "altered in transit"
    return ".".join((head, b64u(jws.canonical_json(document)), signature))


def _expect(receipt: Mapping[str, Any], allowed: set[str], what: str) -> None:
    if receipt["status"] not in allowed:
        wanted = " or ".join(repr(s) for s in sorted(allowed))
        detail = f" ({receipt['detail']})" if receipt.get("detail") else ""
        raise Failed(f"{what} {receipt['directive_id']} was answered {receipt['status']!r}"
                     f"{detail}; expected {wanted}")


def _held(box: Sandbox, *, present: Mapping[str, str] | None = None,
          absent: Mapping[str, str] | None = None) -> list[str]:
    held = box.holdings()
    for directive, what in (present or {}).items():
        if directive not in held:
            raise Failed(f"holdings() does not list {directive} ({what}); it lists "
                         f"{_ids(held)}")
    for directive, what in (absent or {}).items():
        if directive in held:
            raise Failed(f"holdings() still lists {directive} ({what})")
    return held


def _ids(ids: Sequence[str]) -> str:
    return ", ".join(sorted(ids)) or "nothing"


# -- the checks -----------------------------------------------------------------------------
# Each takes the sandbox and what must be held at the end (directive id -> what it is), says
# first what its directives should change there (so one failed check does not make the final
# `holdings` check fail too), then returns what it saw; a Failed says why not. Each check
# uses entries of its own.

Held = dict[str, str]


def check_impose(box: Sandbox, held: Held) -> str:
    a, b = box.directive("impose", "a"), box.directive("impose", "b")
    ids = {directive_id_of(a): "impose of entry a", directive_id_of(b): "impose of entry b"}
    held.update(ids)
    for receipt in box.deliver([a, b]):
        _expect(receipt, {"applied"}, "impose")
    _held(box, present=ids)
    return "two impositions in one batch: applied, receipts signed, both held"


def check_amend(box: Sandbox, held: Held) -> str:
    amend = box.directive("amend", "a", 2)
    impose = directive_id_of(box.directive("impose", "a"))
    held.pop(impose, None)
    held[directive_id_of(amend)] = "amendment of entry a"
    (receipt,) = box.deliver([amend])
    _expect(receipt, {"applied"}, "amend")
    _held(box, present={directive_id_of(amend): "the amendment of entry a"},
          absent={impose: "the imposition the amendment replaced"})
    return "applied; holdings() lists the amendment in place of the imposition"


def check_duplicate(box: Sandbox, held: Held) -> str:
    before = sorted(box.holdings())
    amend, old_impose = box.directive("amend", "a", 2), box.directive("impose", "a")
    (again,) = box.deliver([amend])
    _expect(again, {"duplicate"}, "the repeated amend")
    (stale,) = box.deliver([old_impose])
    _expect(stale, {"duplicate"}, "the repeated (superseded) impose")
    if sorted(box.holdings()) != before:
        raise Failed(f"repeats changed what is held: before {_ids(before)}, after "
                     f"{_ids(box.holdings())}; the directive_id is an idempotency key")
    twice = box.directive("impose", "c")
    held[directive_id_of(twice)] = "impose of entry c"
    first, second = box.deliver([twice, twice])
    _expect(first, {"applied"}, "impose")
    _expect(second, {"duplicate"}, "the same impose, a second time in the same batch,")
    listed = box.holdings()
    if listed.count(directive_id_of(twice)) != 1:
        raise Failed(f"holdings() lists {directive_id_of(twice)} "
                     f"{listed.count(directive_id_of(twice))} times after one batch carried "
                     "it twice")
    return "repeats answered 'duplicate', nothing applied twice"


def check_lift(box: Sandbox, held: Held) -> str:
    lift = box.directive("lift", "a", 3)
    amend = directive_id_of(box.directive("amend", "a", 2))
    held.pop(amend, None)
    (receipt,) = box.deliver([lift])
    _expect(receipt, {"applied"}, "lift")
    _held(box, absent={amend: f"entry a, lifted by {directive_id_of(lift)} which was "
                              f"answered {receipt['status']!r}"},
          present={directive_id_of(box.directive("impose", "b")): "entry b, never lifted"})
    erased = "no deletion confirmed (receipt v2 'erased' not sent)"
    if receipt.get("erased") is True:
        erased = "deletion of the subject's data confirmed (erased)"
    elif receipt.get("erased") is False:
        erased = "the receipt says the subject's data was kept (erased: false)"
    return f"applied; the entry left holdings(), the others stayed; {erased}"


def check_amend_before_impose(box: Sandbox, held: Held) -> str:
    amend, impose = box.directive("amend", "d", 2), box.directive("impose", "d")
    held[directive_id_of(amend)] = "amendment of entry d"
    (receipt,) = box.deliver([amend])
    _expect(receipt, {"applied"}, "an amend that arrived before its impose:")
    (late,) = box.deliver([impose])
    _held(box, present={directive_id_of(amend): "entry d at revision 2"},
          absent={directive_id_of(impose): f"the late impose of revision 1, answered "
                                           f"{late['status']!r}, replaced revision 2"})
    return f"the amend was applied; the late impose was answered {late['status']!r} and " \
           "did not replace it"


def check_lift_unknown(box: Sandbox, held: Held) -> str:
    lift, impose = box.directive("lift", "e"), box.directive("impose", "e")
    (receipt,) = box.deliver([lift])
    _held(box, absent={directive_id_of(lift): "a lift is not a restriction in force"})
    (late,) = box.deliver([impose])
    _held(box, absent={directive_id_of(impose): "an impose delivered after the lift of the "
                       "same revision (as when an expiry lift overtakes a delayed impose): "
                       "the lifted restriction came back"})
    return f"the lift was answered {receipt['status']!r}; the late impose " \
           f"{late['status']!r} and not held"


def check_reroute(box: Sandbox, held: Held) -> str:
    """What interdict sends when a policy takes a measure from the agency (a lift) and a later
    one gives it back (an impose): the same revision, issued later, ids of their own."""
    impose = box.directive("impose", "r")
    later = [box.now + timedelta(minutes=n) for n in (1, 2)]
    lift = box.directive("lift", "r", reroute="policy-b", issued_at=later[0])
    again = box.directive("impose", "r", reroute="policy-a", issued_at=later[1])
    held[directive_id_of(again)] = "impose of entry r, given back by a policy"
    for receipt, what in zip(box.deliver([impose, lift, again]),
                             ("impose", "the lift a policy caused",
                              "the impose a later policy caused"), strict=True):
        _expect(receipt, {"applied"}, what)
    _held(box, present={directive_id_of(again): "entry r, imposed again by a later policy "
                        "(same revision, issued after the lift)"},
          absent={directive_id_of(impose): "entry r, lifted by a policy"})
    box.deliver([lift])  # a redelivery, as after a lost receipt
    _held(box, present={directive_id_of(again): "entry r: a repeated lift undid the impose "
                        "that followed it"})
    return "impose, the policy's lift and the later impose applied in order: held again; a " \
           "repeated lift changed nothing"


def check_directive_v1(box: Sandbox, held: Held) -> str:
    token = box.directive("impose", "v", version=1)
    held[directive_id_of(token)] = "impose of entry v (directive/v1)"
    (receipt,) = box.deliver([token])
    _expect(receipt, {"applied"}, "an impose of schema directive/v1")
    _held(box, present={directive_id_of(token): "entry v, sent as directive/v1"})
    return "a directive/v1 impose was applied and held"


def check_bad_signature(box: Sandbox, held: Held) -> str:
    stranger = jws.Signer(Ed25519PrivateKey.generate())
    tampered = box.directive("impose", "f", tamper=True)
    unknown = box.directive("impose", "g", signer=stranger)
    for receipt, what in zip(box.deliver([tampered, unknown]),
                             ("a directive whose payload was altered after signing",
                              "a directive signed by a key it was not given"), strict=True):
        _expect(receipt, {"rejected"}, what)
    _held(box, absent={directive_id_of(tampered): "a directive with a bad signature",
                       directive_id_of(unknown): "a directive signed by an unknown key"})
    return "both rejected, with a detail, and not applied"


def check_wrong_agency(box: Sandbox, held: Held) -> str:
    other = box.directive("impose", "h", agency=f"not-{box.agency_id}"[:64])
    (receipt,) = box.deliver([other])
    _expect(receipt, {"rejected"}, f"a directive addressed to agency not-{box.agency_id}:")
    _held(box, absent={directive_id_of(other): "a directive addressed to another agency"})
    return "rejected, with a detail, and not applied"


def check_holdings(box: Sandbox, held: Held) -> str:
    listed = box.holdings()
    doubled = sorted({d for d in listed if listed.count(d) > 1})
    missing = sorted(set(held) - set(listed))
    extra = sorted(set(listed) - set(held))
    if doubled or missing or extra:
        problems = [f"{label}: {_ids(ids)}" for label, ids in
                    (("listed twice", doubled), ("missing", missing), ("not in force", extra))
                    if ids]
        raise Failed("holdings() is not exactly what is in force (" + "; ".join(problems) +
                     f"); in force: {', '.join(f'{d} ({w})' for d, w in sorted(held.items()))}")
    return f"lists exactly the {len(held)} directives in force"


def check_failure_reported(box: Sandbox, held: Held) -> str:
    unusable = box.folder / "unusable"
    unusable.write_text("a file where the adapter's data folder should be\n")
    try:
        adapter = box.cls(box.context(unusable))
    except Exception as exc:
        raise Failed(f"constructing the adapter with an unusable data folder raised "
                     f"{type(exc).__name__}: {exc}; open storage lazily, so the failure is a "
                     "DeliveryError from deliver() and one agency cannot stop a whole sync") \
            from None
    token = box.directive("impose", "z")
    try:
        answers = adapter.deliver([token])
        if isinstance(answers[0], DeliveryError):
            return f"a failing store surfaced as DeliveryError [{answers[0].code}]"
        return _claims_without_storage(box, adapter, token, answers[0])
    except DeliveryError as exc:
        return f"a failing store surfaced as DeliveryError [{exc.code}]"
    except Failed:
        raise
    except Exception as exc:
        raise Failed(f"deliver() raised {type(exc).__name__} instead of DeliveryError: {exc}") \
            from None
    finally:
        adapter.close()


def _claims_without_storage(box: Sandbox, adapter: Adapter, token: str, answer: str) -> str:
    """An answer despite unusable storage is fine only if the adapter really keeps it
    elsewhere (a remote system): then its holdings must show it."""
    try:
        document = receipts.verify(answer, agency=box.agency_id,
                                   directive_id=directive_id_of(token),
                                   agency_keys=box.receipt_keys)
    except InterdictError as exc:
        raise Failed(f"with its data folder unusable the adapter answered a receipt that is "
                     f"not valid [{exc.code}] instead of raising DeliveryError") from None
    if document["status"] != "applied":
        return f"with its data folder unusable it answered {document['status']!r}"
    try:
        listed = adapter.holdings()
    except DeliveryError as exc:
        raise Failed(f"with its data folder unusable it answered 'applied', yet holdings() "
                     f"fails [{exc.code}]: the failure was swallowed, not reported") from None
    if directive_id_of(token) not in listed:
        raise Failed("with its data folder unusable it answered 'applied' for a directive "
                     "it does not hold: the failure was swallowed, not reported")
    return "does not depend on its data folder: applied and held"


CHECKS: tuple[tuple[str, Callable[[Sandbox, Held], str]], ...] = (
    ("impose", check_impose),
    ("amend", check_amend),
    ("duplicate", check_duplicate),
    ("lift", check_lift),
    ("amend-before-impose", check_amend_before_impose),
    ("lift-unknown", check_lift_unknown),
    ("reroute", check_reroute),
    ("directive-v1", check_directive_v1),
    ("bad-signature", check_bad_signature),
    ("wrong-agency", check_wrong_agency),
    ("holdings", check_holdings),
    ("failure-reported", check_failure_reported),
)
SETUP = ("manifest", "protocol", "receipt-keys")
NAMES = SETUP + tuple(name for name, _ in CHECKS)


# -- running the kit ------------------------------------------------------------------------

def run(manifest: Mapping[str, Any], *, adapter: type[Adapter] | None = None) -> Report:
    """Run every check against the adapter the manifest names (or ``adapter``). Never raises
    for what the adapter does: every outcome is a check in the report."""
    agency, name = str(manifest.get("id", "?")), str(manifest.get("adapter", "?"))
    checks: list[Check] = []
    cls = _setup(manifest, adapter, checks)
    if cls is None:
        return Report(agency, name, _not_run(checks))
    with tempfile.TemporaryDirectory(prefix="interdict-conformance-") as folder:
        box = Sandbox(manifest, Path(folder), cls)
        try:
            checks.append(_keys(box))
            if not checks[-1].passed:
                return Report(agency, name, _not_run(checks))
            held: Held = {}
            for check_name, check in CHECKS:
                checks.append(_one(check_name, check, box, held))
        finally:
            box.close()
    return Report(agency, name, checks)


def _setup(manifest: Mapping[str, Any], given: type[Adapter] | None,
           checks: list[Check]) -> type[Adapter] | None:
    try:
        schemas.check("agency-manifest", manifest)
        cls = given or adapter_class(str(manifest["adapter"]))
    except InterdictError as exc:
        checks.append(Check("manifest", False, f"[{exc.code}] {exc.message}"))
        return None
    checks.append(Check("manifest", True, f"matches {manifest['schema']}; adapter "
                                          f"{manifest['adapter']!r} is {_where(cls)}"))
    overridden = [m for m in ("deliver", "holdings") if getattr(cls, m) is not getattr(Adapter, m)]
    if overridden:
        checks.append(Check("protocol", False, f"{_where(cls)} overrides {', '.join(overridden)}"
                            ": implement _deliver/_holdings instead, so interdict's wrappers "
                            "turn failures into DeliveryError and check the receipts' count"))
        return None
    checks.append(Check("protocol", True, "implements _deliver/_holdings under Adapter's "
                                          "deliver/holdings"))
    return cls


def _keys(box: Sandbox) -> Check:
    try:
        box.find_receipt_keys()
        box.adapter  # noqa: B018  (constructing it is part of the check)
    except InterdictError as exc:
        return Check("receipt-keys", False, f"[{exc.code}] {exc.message}")
    except Exception as exc:
        return Check("receipt-keys", False, f"setting up the adapter failed: "
                                            f"{type(exc).__name__}: {exc}")
    if not box.receipt_keys:
        return Check("receipt-keys", False, "the manifest lists no public_keys and the adapter "
                     "provisions none: its receipts could never be verified")
    return Check("receipt-keys", True, f"receipts must be signed by {box.keys_named()}")


def _one(name: str, check: Callable[[Sandbox, Held], str], box: Sandbox, held: Held) -> Check:
    try:
        return Check(name, True, check(box, held))
    except Failed as exc:
        return Check(name, False, str(exc))
    except Exception as exc:  # the kit must report, never crash, whatever the adapter does
        return Check(name, False, f"{type(exc).__name__}: {exc}")


def _not_run(checks: list[Check]) -> list[Check]:
    blocker = next(c.name for c in checks if not c.passed)
    done = {c.name for c in checks}
    return checks + [Check(n, False, f"not run: the {blocker!r} check failed")
                     for n in NAMES if n not in done]


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- the pytest plugin ----------------------------------------------------------------------
# Load it with `-p interdict.agencies.conformance` (e.g. in pyproject's pytest addopts) and
# write one test; it runs once per check, named after it:
#
#     def test_conformance(conformance_check):
#         assert conformance_check.passed, conformance_check.detail
#
# The manifest is --agency-manifest PATH, else AGENCY_MANIFEST in the test module, else
# manifest.json in pytest's rootdir. No pytest import is needed: these are plain hooks.

def pytest_addoption(parser: Any) -> None:
    parser.addoption("--agency-manifest", metavar="PATH", default=None,
                     help="the agency manifest the interdict conformance kit checks "
                          "[default: manifest.json in the rootdir]")


def pytest_generate_tests(metafunc: Any) -> None:
    if "conformance_check" not in metafunc.fixturenames:
        return
    path = (metafunc.config.getoption("agency_manifest")
            or getattr(metafunc.module, "AGENCY_MANIFEST", None)
            or Path(metafunc.config.rootpath) / "manifest.json")
    report = _report_for(str(Path(path).resolve()))
    metafunc.parametrize("conformance_check", report.checks,
                         ids=[c.name for c in report.checks])


@cache
def _report_for(path: str) -> Report:
    return run(read_manifest(Path(path)))
