"""Credentials, kept in Postgres as hashes only: API tokens for staff, sign-in links and
server-side sessions for participants (and for staff in the browser).

A sign-in link carries ``itsdangerous``-signed ``{employee, nonce}`` with a 15-minute
``max_age``; the ``magic_links`` row (the nonce's hash) makes it single use. Sessions are a
random id in an HttpOnly cookie; the table holds its hash, so a database reader cannot
impersonate anyone, and revoking is one UPDATE.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

Role = Literal["participant", "coordinator", "auditor"]
StaffRole = Literal["coordinator", "auditor"]
ROLES: tuple[Role, ...] = ("participant", "coordinator", "auditor")
STAFF_ROLES: tuple[StaffRole, ...] = ("coordinator", "auditor")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``subject`` is an employee id (participants) or a token name (staff).

    ``via`` says how they proved it (``session``, ``token``; an OIDC authenticator would add
    ``oidc``); ``session_id`` is set for cookie sessions, which need CSRF tokens on writes.
    """

    role: Role
    subject: str
    via: str
    session_id: str | None = None
    token_id: str | None = None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- API tokens -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


async def create_api_token(pool: asyncpg.Pool, role: StaffRole, name: str) -> tuple[str, str]:
    """(token id, the token). The token is shown once; only its hash is stored."""
    if role not in STAFF_ROLES:
        raise ValueError(f"role must be one of {', '.join(STAFF_ROLES)}, not {role!r}")
    name = name.strip()
    if not name:
        raise ValueError("give the token a name (who or what uses it)")
    token_id = secrets.token_hex(4)
    token = f"sby_{token_id}_{secrets.token_urlsafe(32)}"
    await pool.execute(
        "INSERT INTO api_tokens (token_id, name, role, token_hash) VALUES ($1, $2, $3, $4)",
        token_id, name, role, digest(token))
    return token_id, token


async def list_api_tokens(pool: asyncpg.Pool) -> list[TokenInfo]:
    rows = await pool.fetch(
        "SELECT token_id, name, role, created_at, last_used_at, revoked_at FROM api_tokens "
        "ORDER BY created_at, token_id")
    return [TokenInfo(**dict(r)) for r in rows]


async def revoke_api_token(pool: asyncpg.Pool, token_id: str) -> bool:
    """Revoke a token and every browser session opened with it; False if unknown."""
    async with pool.acquire() as conn, conn.transaction():
        found = await conn.fetchval(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) "
            "WHERE token_id = $1 RETURNING token_id", token_id)
        await conn.execute(
            "UPDATE web_sessions SET revoked_at = now() "
            "WHERE token_id = $1 AND revoked_at IS NULL", token_id)
    return found is not None


async def principal_for_token(pool: asyncpg.Pool, token: str) -> Principal | None:
    row = await pool.fetchrow(
        "UPDATE api_tokens SET last_used_at = now() "
        "WHERE token_hash = $1 AND revoked_at IS NULL RETURNING token_id, name, role",
        digest(token))
    if row is None:
        return None
    return Principal(role=row["role"], subject=row["name"], via="token",
                     token_id=row["token_id"])


# --- sessions ---------------------------------------------------------------------------------


async def create_session(pool: asyncpg.Pool, role: Role, subject: str, *, days: int,
                         token_id: str | None = None) -> str:
    """A new session; returns the id for the cookie (stored hashed)."""
    session_id = secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO web_sessions (session_hash, role, subject, token_id, expires_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        digest(session_id), role, subject, token_id,
        datetime.now(UTC) + timedelta(days=days))
    return session_id


async def principal_for_session(pool: asyncpg.Pool, session_id: str) -> Principal | None:
    row = await pool.fetchrow(
        "SELECT s.role, s.subject, s.token_id FROM web_sessions s "
        "LEFT JOIN api_tokens t ON t.token_id = s.token_id "
        "WHERE s.session_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() "
        "AND t.revoked_at IS NULL", digest(session_id))
    if row is None:
        return None
    return Principal(role=row["role"], subject=row["subject"], via="session",
                     session_id=session_id, token_id=row["token_id"])


async def revoke_session(pool: asyncpg.Pool, session_id: str) -> None:
    await pool.execute(
        "UPDATE web_sessions SET revoked_at = now() "
        "WHERE session_hash = $1 AND revoked_at IS NULL", digest(session_id))


def csrf_token(secret_key: str, session_id: str) -> str:
    """Bound to the session (no storage): a page embeds it in every form it renders."""
    return hmac.new(secret_key.encode(), f"csrf:{session_id}".encode(),
                    hashlib.sha256).hexdigest()


def csrf_ok(secret_key: str, session_id: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(
        csrf_token(secret_key, session_id), presented)


# --- sign-in links ------------------------------------------------------------------------------


class LinkInvalid(Exception):
    """``reason``: ``expired``, ``used`` or ``invalid`` (forged, truncated, unknown)."""

    def __init__(self, reason: Literal["expired", "used", "invalid"]) -> None:
        super().__init__(reason)
        self.reason = reason


def sign_in_url(public_url: str, token: str) -> str:
    """The address in the mail: it opens the "Continue" page, it does not sign in by itself."""
    from urllib.parse import urlencode

    return f"{public_url.rstrip('/')}/auth/magic?{urlencode({'token': token})}"


class MagicLinks:
    def __init__(self, pool: asyncpg.Pool, secret_key: str, minutes: int) -> None:
        self._pool = pool
        self._minutes = minutes
        self._serializer = URLSafeTimedSerializer(secret_key, salt="sebaya-sign-in")

    @property
    def minutes(self) -> int:
        return self._minutes

    async def issue(self, employee_id: str) -> str:
        """A new single-use token for ``employee_id`` (only its nonce's hash is stored)."""
        nonce = secrets.token_urlsafe(24)
        await self._pool.execute(
            "INSERT INTO magic_links (nonce_hash, employee_id, expires_at) VALUES ($1, $2, $3)",
            digest(nonce), employee_id, datetime.now(UTC) + timedelta(minutes=self._minutes))
        return self._serializer.dumps({"e": employee_id, "n": nonce})

    def _load(self, token: str) -> tuple[str, str]:
        try:
            data = self._serializer.loads(token, max_age=self._minutes * 60)
        except SignatureExpired:
            raise LinkInvalid("expired") from None
        except BadSignature:
            raise LinkInvalid("invalid") from None
        if not isinstance(data, dict) or not isinstance(data.get("e"), str) \
                or not isinstance(data.get("n"), str):
            raise LinkInvalid("invalid")
        return data["e"], data["n"]

    async def check(self, token: str) -> str:
        """The employee the link is for, without using it up (the page behind a GET)."""
        employee, nonce = self._load(token)
        row = await self._pool.fetchrow(
            "SELECT employee_id, used_at, expires_at FROM magic_links WHERE nonce_hash = $1",
            digest(nonce))
        if row is None or row["employee_id"] != employee:
            raise LinkInvalid("invalid")
        if row["used_at"] is not None:
            raise LinkInvalid("used")
        if row["expires_at"] <= datetime.now(UTC):
            raise LinkInvalid("expired")
        return employee

    async def consume(self, token: str) -> str:
        """Use the link up (first caller wins) and return its employee."""
        employee, nonce = self._load(token)
        row = await self._pool.fetchrow(
            "UPDATE magic_links SET used_at = now() "
            "WHERE nonce_hash = $1 AND employee_id = $2 AND used_at IS NULL "
            "AND expires_at > now() RETURNING employee_id", digest(nonce), employee)
        if row is None:
            await self.check(token)  # says why: used, expired or unknown
            raise LinkInvalid("invalid")
        return employee
