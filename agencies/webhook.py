"""The webhook adapter: each directive is one HTTP POST to the agency's endpoint.

The request follows Standard Webhooks (https://www.standardwebhooks.com/) with its asymmetric
``v1a`` signature, made with interdict's engine key (the key that signs directives)::

    POST <settings.endpoint>
    content-type: application/jose
    webhook-id: <directive_id>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1a,<base64 Ed25519 signature over "<id>.<timestamp>.<body>">

    <the directive, a JWS compact serialization>

The agency answers 2xx with its signed receipt (a JWS compact serialization) as the body.
Anything else fails that directive alone, to be retried: a timeout, a refused connection, a
redirect (never followed: the endpoint is what the manifest says), another status, or a body
over the size limit. Reconcile asks ``settings.holdings_endpoint`` with a GET signed the same
way (a random ``webhook-id``, empty body) for ``{"directive_ids": [...]}``.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from interdict.agencies.base import Adapter, AdapterContext
from interdict.errors import ConfigError, DeliveryError
from interdict.keys import jws

CONTENT_TYPE = "application/jose"
SIGNATURE_VERSION = "v1a"
DEFAULT_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = jws.MAX_TOKEN_BYTES
MAX_HOLDINGS_BYTES = 64 * 1024 * 1024


def signed_content(webhook_id: str, timestamp: str, body: bytes) -> bytes:
    """What ``webhook-signature`` signs (Standard Webhooks): ``id.timestamp.body``."""
    return f"{webhook_id}.{timestamp}.".encode() + body


def headers_for(sign: Callable[[bytes], bytes], webhook_id: str, body: bytes,
                timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = base64.b64encode(sign(signed_content(webhook_id, stamp, body))).decode()
    return {"webhook-id": webhook_id, "webhook-timestamp": stamp,
            "webhook-signature": f"{SIGNATURE_VERSION},{signature}"}


def check_endpoint(url: str, setting: str) -> str:
    """An absolute http(s) URL; plain http only to this machine (directives hold personal
    data, and TLS is what keeps them private in transit).

    Raises:
        ConfigError: ``webhook.endpoint`` naming the setting and what is wrong.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"settings.{setting} {url!r} is not an absolute http(s) URL",
                          code="webhook.endpoint")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ConfigError(f"settings.{setting} {url!r} uses plain http to another machine; "
                          "use https", code="webhook.endpoint")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookAgency(Adapter):
    """An agency reached over HTTP; it keeps its own store and signs its own receipts."""

    name = "webhook"

    def __init__(self, context: AdapterContext) -> None:
        super().__init__(context)
        settings = context.manifest.get("settings", {})
        if "endpoint" not in settings:
            raise ConfigError(f"agency {self.agency_id}: a webhook manifest needs "
                              "settings.endpoint", code="webhook.endpoint")
        self.endpoint = check_endpoint(str(settings["endpoint"]), "endpoint")
        holdings = settings.get("holdings_endpoint")
        self.holdings_endpoint = check_endpoint(str(holdings), "holdings_endpoint") \
            if holdings else None
        self.timeout_s = float(settings.get("timeout_s", DEFAULT_TIMEOUT_S))

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=httpx.Timeout(self.timeout_s), follow_redirects=False,
                            headers={"user-agent": "interdict-webhook/1"})

    def _sign(self) -> Callable[[bytes], bytes]:
        if self.context.engine_sign is None:
            raise ConfigError("the webhook adapter runs only inside interdict (no engine key)",
                              code="webhook.no_engine_key")
        return self.context.engine_sign

    # -- the protocol ----------------------------------------------------------------------

    def _deliver(self, directives: Sequence[str]) -> Sequence[str | DeliveryError]:
        sign = self._sign()
        return [self._post(sign, token) for token in directives]

    def _post(self, sign: Callable[[bytes], bytes], token: str) -> str | DeliveryError:
        directive_id = _directive_id(token)
        body = token.encode("ascii")
        headers = {"content-type": CONTENT_TYPE, "accept": CONTENT_TYPE,
                   **headers_for(sign, directive_id, body)}
        try:
            answer = self._request("POST", self.endpoint, headers, body, MAX_ANSWER_BYTES)
        except DeliveryError as exc:
            return exc
        return answer.decode("ascii", "replace").strip()

    def _holdings(self) -> Sequence[str]:
        if self.holdings_endpoint is None:
            raise DeliveryError(f"agency {self.agency_id} has no settings.holdings_endpoint",
                                code="webhook.no_holdings_endpoint")
        webhook_id = "h-" + secrets.token_hex(16)
        headers = {"accept": "application/json", **headers_for(self._sign(), webhook_id, b"")}
        data = self._request("GET", self.holdings_endpoint, headers, b"", MAX_HOLDINGS_BYTES)
        try:
            listed: Any = orjson.loads(data)["directive_ids"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            listed = None
        if not (isinstance(listed, list) and all(isinstance(i, str) for i in listed)):
            raise DeliveryError(f"agency {self.agency_id}: holdings are not "
                                '{"directive_ids": [...]}', code="webhook.holdings_shape")
        return listed

    def close(self) -> None:
        if "_client" in self.__dict__:
            self._client.close()
            del self.__dict__["_client"]

    # -- HTTP ------------------------------------------------------------------------------

    def _request(self, method: str, url: str, headers: dict[str, str], body: bytes,
                 limit: int) -> bytes:
        """The 2xx body, at most ``limit`` bytes.

        Raises:
            DeliveryError: ``webhook.timeout``, ``webhook.unreachable``, ``webhook.redirect``,
            ``webhook.status`` or ``webhook.too_large``.
        """
        where = f"agency {self.agency_id} at {url}"
        try:
            with self._client.stream(method, url, headers=headers, content=body) as response:
                if response.is_redirect:
                    target = response.headers.get("location")
                    raise DeliveryError(f"{where} redirected to {target!r}; redirects are not "
                                        "followed", code="webhook.redirect")
                data = _read(response, limit, where)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"{where} did not answer within {self.timeout_s} s "
                                f"({type(exc).__name__})", code="webhook.timeout") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{where} unreachable: {type(exc).__name__}: {exc}",
                                code="webhook.unreachable") from None
        if not response.is_success:
            snippet = data[:300].decode("utf-8", "replace")
            raise DeliveryError(f"{where} answered HTTP {response.status_code}: {snippet}",
                                code="webhook.status")
        return data


def _read(response: httpx.Response, limit: int, where: str) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise DeliveryError(f"{where} answered more than {limit} bytes",
                                code="webhook.too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _directive_id(token: str) -> str:
    """The id of a directive interdict signed itself (the header is its idempotency key)."""
    return str(jws.parse_payload(jws.parse(token, jws.TYP_DIRECTIVE))["directive_id"])
