"""Tokens that say when they expire, as Laravel Passport's do (tallyfy-api.md, section 4).

Tallyfy's API is Laravel Passport, whose personal access tokens are JWTs: the middle part, a
base64url JSON object, holds `exp` (seconds since the epoch). The sandbox issues such tokens
(`jwt_token`) and refuses one with 401 once its `exp` has passed by the sandbox's clock, so
a client can learn a token's expiry the way it would from Tallyfy: from the token itself.
The signature is an HMAC of the sandbox's own; nobody but the sandbox checks it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime

_KEY = b"tallyfy-sandbox-signing-key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_token(expires_at: datetime, *, subject: str = "1001") -> str:
    """A JWT-shaped personal access token for user `subject`, expiring at `expires_at`."""
    header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
    payload = _b64(
        json.dumps({"sub": subject, "exp": int(expires_at.timestamp()), "scopes": []}).encode()
    )
    signature = hmac.new(_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def expires_at(token: str) -> float | None:
    """The token's `exp` (seconds since the epoch), if it is one of ours and says it."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    header, payload, signature = parts
    expected = hmac.new(_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(_b64(expected), signature):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
