"""The codec endpoint the Temporal Web UI and CLI call to show encrypted payloads.

Temporal's remote codec protocol: ``POST <endpoint>/decode`` (and ``/encode``) with the body
``{"payloads": [<Payload in proto3 JSON: metadata values and data base64>]}`` answered with the
same shape. :func:`handle` implements it without any web framework, so whichever HTTP service
Sebaya exposes can mount it in a few lines (see ``docs/security.md``)::

    status, headers, body = await handle(method, path, request_headers, request_body,
                                         codec=codec, allowed_origins={"https://ui.example"})

Decoding shows plaintext goals and notes to whoever can reach the endpoint: mount it only
behind the same single sign-on as the UI, and never on a public address.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from sebaya.codec import PayloadDecryptionError

__all__ = ["CodecRequestError", "cors_headers", "decode", "encode", "handle"]

# What the UI sends: X-Namespace names the namespace, Authorization when the UI is set to pass
# its credentials ("Include cross-origin credentials" in the codec settings).
_ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"


class CodecRequestError(ValueError):
    """The request body is not a Temporal payloads document."""


def _payloads(body: str | bytes) -> Payloads:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CodecRequestError(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("payloads"), list):
        raise CodecRequestError('expected {"payloads": [...]}')
    try:
        return json_format.ParseDict(document, Payloads())
    except json_format.ParseError as exc:
        raise CodecRequestError(f"payloads: {exc}") from None


def _document(payloads: list[Any]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads), indent=None)


async def decode(payloads_json: str | bytes, codec: PayloadCodec) -> str:
    """``/decode``: the payloads document with every payload decoded by ``codec``."""
    return _document(await codec.decode(list(_payloads(payloads_json).payloads)))


async def encode(payloads_json: str | bytes, codec: PayloadCodec) -> str:
    """``/encode``: the payloads document with every payload encoded by ``codec``."""
    return _document(await codec.encode(list(_payloads(payloads_json).payloads)))


def cors_headers(origin: str | None, allowed_origins: Collection[str]) -> dict[str, str]:
    """CORS headers for a browser at ``origin``: none unless it is explicitly allowed (never
    ``*``: the endpoint reveals plaintext, and credentials are sent along)."""
    if origin is None or origin not in allowed_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


async def handle(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    codec: PayloadCodec,
    allowed_origins: Collection[str] = (),
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to the codec endpoint: ``(status, headers, body)``.

    ``path`` is relative to where the endpoint is mounted (``/decode`` or ``/encode``);
    ``headers`` keys are matched case-insensitively.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    out = cors_headers(lowered.get("origin"), allowed_origins)
    if method == "OPTIONS":  # the browser's preflight
        # A refused preflight is a bad request (as Starlette's CORS middleware answers), not
        # an authorization failure: preflights never carry credentials.
        return (200, out, b"") if out else (400, {}, b'{"error": "origin not allowed"}')
    operation = {"/decode": decode, "/encode": encode}.get(path.rstrip("/") or "/")
    if operation is None:
        return 404, out, b'{"error": "no such codec operation; use /decode or /encode"}'
    if method != "POST":
        return 405, {**out, "Allow": "POST, OPTIONS"}, b'{"error": "use POST"}'
    out["Content-Type"] = "application/json"
    try:
        return 200, out, (await operation(body, codec)).encode()
    except CodecRequestError as exc:
        return 400, out, json.dumps({"error": str(exc)}).encode()
    except PayloadDecryptionError as exc:
        return 422, out, json.dumps({"error": str(exc)}).encode()
