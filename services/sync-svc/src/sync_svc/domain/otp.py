"""Twikey's one-time password for API keys with "enhanced security" (reference §1.2): a TOTP over
30 s steps, HMAC-SHA256 keyed with "own" + the hex-decoded private key, offset from byte 19."""

from __future__ import annotations

import hashlib
import hmac
import struct

SALT = b"own"


def otp(private_key_hex: str, unix_seconds: float) -> int:
    key = SALT + bytes.fromhex(private_key_hex)
    counter = struct.pack(">Q", int(unix_seconds) // 30)
    digest = hmac.new(key, counter, hashlib.sha256).digest()
    offset = digest[19] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return int(value % 100_000_000)
