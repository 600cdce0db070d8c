"""Temporal payloads encrypted at rest: AES-256-GCM under a keyring that rotates.

Temporal keeps every workflow input, update, result and activity payload in its history, in its
own database (or a third party's, with Temporal Cloud). Every payload leaves this process
encrypted with the keyring's active key; the key id travels in the payload's metadata, so a key
retired from encrypting keeps decrypting the cases that still hold payloads under it. Payloads
without this codec's encoding (histories recorded before it) pass through as they are.
"""

from __future__ import annotations

import base64
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
COMPRESSION = "encryption-compression"
ZLIB = b"zlib"
COMPRESS_FROM = 1024  # bytes; smaller payloads rarely shrink
NONCE_BYTES = 12


class MissingKey(Exception):
    """A payload was encrypted under a key this keyring does not hold."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"Payload encrypted under key {key_id!r}, which is not in the keyring: "
            "add it back to PAYLOAD_KEYS to read this case"
        )
        self.key_id = key_id


@dataclass(frozen=True)
class Keyring:
    """Keys by id; `active` encrypts, every key decrypts."""

    keys: Mapping[str, bytes]
    active: str

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise ValueError(f"The active payload key {self.active!r} is not in the keyring")
        for key_id, key in self.keys.items():
            if len(key) != 32:
                raise ValueError(f"Payload key {key_id!r} must be 32 bytes (AES-256)")

    @classmethod
    def from_base64(cls, keys: Mapping[str, str], active: str) -> Keyring:
        return cls({key_id: base64.b64decode(key) for key_id, key in keys.items()}, active)

    def cipher(self, key_id: str) -> AESGCM:
        key = self.keys.get(key_id)
        if key is None:
            raise MissingKey(key_id)
        return AESGCM(key)


class EncryptionCodec(PayloadCodec):
    """Compresses large payloads, then encrypts each with a random nonce under the active key.

    The key id is bound to the ciphertext as associated data, so a payload relabelled with
    another key id fails to decrypt rather than decrypting wrongly."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.keyring.active
        plain = payload.SerializeToString()
        metadata = {"encoding": ENCODING, KEY_ID: key_id.encode()}
        if len(plain) >= COMPRESS_FROM:
            plain = zlib.compress(plain)
            metadata[COMPRESSION] = ZLIB
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.keyring.cipher(key_id).encrypt(nonce, plain, key_id.encode())
        return Payload(metadata=metadata, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption, or by a client without it
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        plain = self.keyring.cipher(key_id).decrypt(nonce, sealed, key_id.encode())
        if payload.metadata.get(COMPRESSION) == ZLIB:
            plain = zlib.decompress(plain)
        return Payload.FromString(plain)
