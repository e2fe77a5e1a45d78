"""When an access token expires, where the API tells it: the token itself.

Tallyfy's API is Laravel Passport (tallyfy-api.md, section 4), whose personal access tokens
are JWTs: three base64url parts, the middle one a JSON object whose `exp` is the expiry in
seconds since the epoch. No endpoint says when a token expires, so the token is read: the
payload only, with no signature check (nothing is trusted from it but a date that at worst
warns too early or too late). A token that is not a JWT has no expiry we can know: None.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

MAX_JWT_LENGTH = 16_384  # a payload to decode, not a document


def token_expires_at(token: str) -> datetime | None:
    """The token's `exp` as an aware UTC instant, or None when it does not say."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_JWT_LENGTH:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp != exp:
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None
