"""The participant's calendar feed: asked for from the home page (a CSRF-protected POST),
served at an unguessable URL, replaced (and so revoked) by asking again, exactly the meetings
the pairing's agenda schedules."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import recurring_ical_events
from icalendar import Calendar

from tests.web.conftest import WebEnv
from tests.web.test_pages import browser_for

pytestmark = pytest.mark.temporal


async def test_a_participant_subscribes_to_their_meetings_and_can_revoke_the_link(
    web: WebEnv,
) -> None:
    pid, _ = await web.pairing(mentor="M700", mentee="E700",
                               rules=None)  # meetings start without waiting for goals
    browser, csrf = await browser_for(web, "E700")
    home = await browser.get("/", params={"lang": "en"})
    assert 'action="/calendar-feed"' in home.text

    refused = await browser.post("/calendar-feed", data={})  # no CSRF token: not from our page
    assert refused.status_code == 403

    page = await browser.post("/calendar-feed", data={"csrf_token": csrf})
    assert page.status_code == 200
    url = re.search(r'id="feed-url" type="url" readonly value="([^"]+)"', page.text)
    assert url is not None
    path = url.group(1).removeprefix(web.settings.public_url.rstrip("/"))

    anyone = web.http()  # a calendar client: no session, no cookie
    served = await anyone.get(path)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(served.content)
    meetings = recurring_ical_events.of(calendar).between(datetime(2000, 1, 1, tzinfo=UTC),
                                                          datetime(2100, 1, 1, tzinfo=UTC))
    state = await web.client.get_workflow_handle(f"pairing-{pid}").query("state")
    assert meetings and len(meetings) >= state["meetings_held"] + 1
    again = await anyone.get(path, headers={"If-None-Match": served.headers["etag"]})
    assert again.status_code == 304

    await browser.post("/calendar-feed", data={"csrf_token": csrf})  # a new link...
    assert (await anyone.get(path)).status_code == 404  # ...revokes the old one
    assert (await anyone.get("/calendar/not-a-token.ics")).status_code == 404
