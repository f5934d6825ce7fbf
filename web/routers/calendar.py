"""A participant's calendar feed: one subscribable URL with every meeting of every pairing
they are in (``delivery.invites.participant_feed``; docs/notifications.md).

Calendar clients cannot sign in, so the URL carries an unguessable token. A participant asks
for it from their home page (a POST, CSRF-protected); asking again replaces the token, which
revokes every URL handed out before. Only the token's hash is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from delivery.invites import organizer_from, participant_feed
from web.auth import digest
from web.deps import PUBLIC, ParticipantDep, ServicesDep
from web.pages import html_page, render
from web.problems import Problem

router = APIRouter(include_in_schema=False)


async def issue_feed_token(pool: Any, employee_id: str) -> str:
    """A new feed token for ``employee_id``; any earlier one stops working."""
    token = secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO calendar_feeds (employee_id, token_hash) VALUES ($1, $2) "
        "ON CONFLICT (employee_id) DO UPDATE SET token_hash = EXCLUDED.token_hash, "
        "created_at = now(), last_used_at = NULL", employee_id, digest(token))
    return token


@router.post("/calendar-feed", dependencies=[Depends(html_page)])
async def new_feed_link(request: Request, me: ParticipantDep, svc: ServicesDep) -> Any:
    token = await issue_feed_token(svc.pool, me.subject)
    url = f"{svc.settings.public_url.rstrip('/')}/calendar/{token}.ics"
    return render(request, "calendar_feed.html", {"feed_url": url})


@router.get("/calendar/{token}.ics", dependencies=[Depends(PUBLIC)])
async def feed(token: str, request: Request, svc: ServicesDep) -> Response:
    employee_id = await svc.pool.fetchval(
        "UPDATE calendar_feeds SET last_used_at = now() WHERE token_hash = $1 "
        "RETURNING employee_id", digest(token))
    if employee_id is None:
        raise Problem(404, "calendar_feed_not_found",
                      "no calendar feed at this address (it may have been replaced)")
    body = await participant_feed(svc.store, employee_id, organizer_from(svc.settings.mail_from))
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="text/calendar; charset=utf-8",
                    headers={"ETag": etag, "Cache-Control": "private, max-age=300"})
