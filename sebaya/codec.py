"""Encrypting what Sebaya sends to Temporal (optional; ``SEBAYA_PAYLOAD_KEYS``).

Temporal keeps every workflow input, activity argument, result, update and query answer in
its history, readable by whoever operates the Temporal cluster (and Temporal Cloud). Personal
data (names, e-mails) never goes there by design (``tests/test_pii.py`` holds us to it), but
free text does: goals, meeting topics, notes. With keys configured, this codec encrypts
*every* payload with AES-256-GCM before it leaves the process, so histories hold ciphertext
only. Encrypting everything rather than picking fields means a new free-text field can never
leak by being forgotten.

Keys: ``SEBAYA_PAYLOAD_KEYS="k2:<base64>,k1:<base64>"``; the first is the active key (new
payloads), the others still decrypt what they encrypted. Each payload names its key in its
metadata (``encryption-key-id``), and the key id is also the AEAD associated data, so a payload
cannot be passed off as encrypted under another key. Payloads without the encrypted encoding
(written before keys were configured) decode unchanged.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

__all__ = [
    "ENCRYPTED_ENCODING",
    "KEY_ID_METADATA",
    "EncryptionCodec",
    "PayloadDecryptionError",
    "PayloadKeyError",
    "PayloadKeys",
    "data_converter",
]

ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
_NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    """``SEBAYA_PAYLOAD_KEYS`` cannot be parsed (the message names the entry)."""


class PayloadDecryptionError(RuntimeError):
    """An encrypted payload cannot be decrypted with the configured keys."""


@dataclass(frozen=True)
class PayloadKeys:
    """The configured keys, in order; ``active`` encrypts, all of them decrypt."""

    active: str
    keys: Mapping[str, bytes] = dataclasses.field(repr=False)

    @classmethod
    def parse(cls, text: str) -> PayloadKeys:
        """Parse ``"id:base64,id:base64"``; keys must be 16, 24 or 32 bytes (AES-128/192/256)."""
        keys: dict[str, bytes] = {}
        for n, entry in enumerate((e.strip() for e in text.split(",")), start=1):
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            where = f"SEBAYA_PAYLOAD_KEYS entry {n} ({key_id or '?'})"
            if not sep or not key_id:
                raise PayloadKeyError(f"{where}: expected <key id>:<base64 key>")
            if key_id in keys:
                raise PayloadKeyError(f"{where}: key id {key_id!r} appears twice")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise PayloadKeyError(f"{where}: the key is not valid base64") from None
            if len(key) not in (16, 24, 32):
                raise PayloadKeyError(f"{where}: the key is {len(key)} bytes; AES needs 16, 24 "
                                      "or 32 (generate one with `python -c \"import base64, os; "
                                      "print(base64.b64encode(os.urandom(32)).decode())\"`)")
            keys[key_id] = key
        if not keys:
            raise PayloadKeyError("SEBAYA_PAYLOAD_KEYS is set but names no key")
        return cls(active=next(iter(keys)), keys=keys)


class EncryptionCodec(PayloadCodec):
    """AES-GCM over the whole serialised payload (metadata and data), keyed by id."""

    def __init__(self, keys: PayloadKeys) -> None:
        self._active = keys.active
        self._active_id = keys.active.encode()
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}
        self._names = ", ".join(keys.keys)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._active]
        out = []
        for payload in payloads:
            nonce = os.urandom(_NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), self._active_id)
            out.append(Payload(metadata={"encoding": ENCRYPTED_ENCODING,
                                         KEY_ID_METADATA: self._active_id},
                               data=nonce + sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decode_one(p) for p in payloads]

    def _decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            return payload  # written before encryption was switched on
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload encrypted with key {key_id!r}, which is not in SEBAYA_PAYLOAD_KEYS "
                f"(configured: {self._names}); add it back (after the active key) to read it")
        nonce, sealed = payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload encrypted with key {key_id!r} does not decrypt with the configured "
                f"key of that id: the key is wrong or the payload was altered") from None
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def data_converter(payload_keys: SecretStr | str | None) -> DataConverter:
    """The pydantic data converter, with :class:`EncryptionCodec` when keys are given."""
    if payload_keys is None:
        return pydantic_data_converter
    text = payload_keys.get_secret_value() if isinstance(payload_keys, SecretStr) else payload_keys
    codec = EncryptionCodec(PayloadKeys.parse(text))
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)
