"""Sign-in links and CSRF: links are single use, expire after 15 minutes, cannot be forged,
survive a mail scanner's GET; asking for one never tells who has an account; cookie writes
need the session's CSRF token."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer

from tests.web.conftest import WebEnv
from web import auth

pytestmark = pytest.mark.temporal


async def add_person(web: WebEnv, employee_id: str, email: str) -> None:
    await web.pool.execute(
        "INSERT INTO participants (employee_id, name, email) VALUES ($1, $2, $3)",
        employee_id, f"Orang {employee_id}", email)


async def test_asking_for_a_link_never_tells_who_has_an_account(web: WebEnv) -> None:
    await add_person(web, "E300", "siti@example.co.id")
    client = web.http()
    known = await client.post("/api/v1/auth/magic-link", json={"email": "Siti@example.co.id"})
    unknown = await client.post("/api/v1/auth/magic-link", json={"email": "nobody@example.co.id"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    page_known = await client.post("/sign-in", data={"email": "siti@example.co.id"})
    page_unknown = await client.post("/sign-in", data={"email": "nobody@example.co.id"})
    assert page_known.status_code == page_unknown.status_code == 202
    assert page_known.text == page_unknown.text
    # One link was issued (for the known address), stored as a hash, the mail's URL redacted.
    rows = await web.pool.fetch("SELECT employee_id, nonce_hash FROM magic_links")
    assert [r["employee_id"] for r in rows] == ["E300", "E300"]
    payloads = await web.pool.fetch(
        "SELECT payload::text AS p FROM deliveries WHERE template = 'magic_link'")
    assert len(payloads) == 2
    assert all("/auth/magic?token=" not in r["p"] for r in payloads)


async def test_links_to_one_person_are_throttled(web: WebEnv) -> None:
    from web.routers.sign_in import MAX_LINKS_PER_WINDOW

    await add_person(web, "E303", "rina@example.co.id")
    client = web.http()
    for _ in range(MAX_LINKS_PER_WINDOW + 3):
        r = await client.post("/api/v1/auth/magic-link", json={"email": "rina@example.co.id"})
        assert r.status_code == 202
    sent = await web.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE template = 'magic_link' AND recipient = 'E303'")
    assert sent == MAX_LINKS_PER_WINDOW


async def sign_in_with(web: WebEnv, token: str) -> Any:
    client = web.http()
    page = await client.get("/auth/magic", params={"token": token})
    if page.status_code != 200:
        return page, client
    done = await client.post("/auth/magic", data={"token": token})
    return done, client


async def test_link_opens_a_page_and_only_the_post_signs_in_once(web: WebEnv) -> None:
    await add_person(web, "E301", "budi@example.co.id")
    token = await web.app.state.services.links.issue("E301")
    scanner = web.http()
    for _ in range(3):  # a mail scanner fetching the link does not use it up
        page = await scanner.get("/auth/magic", params={"token": token})
        assert page.status_code == 200 and 'action="/auth/magic"' in page.text
    done, browser = await sign_in_with(web, token)
    assert done.status_code == 303 and done.headers["location"] == "/"
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    me = await browser.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["subject"] == "E301"
    # Reused: refused, on the page and on the POST.
    again, _ = await sign_in_with(web, token)
    assert again.status_code == 400
    direct = await web.http().post("/auth/magic", data={"token": token})
    assert direct.status_code == 400
    assert "sudah dipakai" in direct.text or "already been used" in direct.text
    stored = await web.pool.fetchval("SELECT count(*) FROM magic_links WHERE nonce_hash = $1",
                                     token)
    assert stored == 0


async def test_expired_and_forged_links_are_refused(web: WebEnv) -> None:
    await add_person(web, "E302", "ani@example.co.id")
    svc = web.app.state.services
    # Expired: a link made 16 minutes ago with the real key (itsdangerous dates it then).
    nonce = "expired-nonce"
    await web.pool.execute(
        "INSERT INTO magic_links (nonce_hash, employee_id, created_at, expires_at) "
        "VALUES ($1, 'E302', now() - interval '16 minutes', now() - interval '1 minute')",
        hashlib.sha256(nonce.encode()).hexdigest())

    class Then(URLSafeTimedSerializer):
        pass

    old = Then(web.settings.secret_key, salt="sebaya-sign-in")
    old_signer = old.make_signer("sebaya-sign-in")
    old_signer.get_timestamp = lambda: int(time.time()) - 16 * 60  # type: ignore[method-assign]
    payload = old.dump_payload({"e": "E302", "n": nonce})
    expired = old_signer.sign(payload).decode()
    for attempt in (expired,):
        page, _ = await sign_in_with(web, attempt)
        assert page.status_code == 400
        assert "kedaluwarsa" in page.text or "expired" in page.text
        with pytest.raises(auth.LinkInvalid) as why:
            await svc.links.consume(attempt)
        assert why.value.reason == "expired"
    # Forged: signed with another key, or tampered with.
    forged = URLSafeTimedSerializer("not-our-key", salt="sebaya-sign-in").dumps(
        {"e": "E302", "n": "x"})
    good = await svc.links.issue("E302")
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    for bad in (forged, tampered, "", "garbage"):
        page, _ = await sign_in_with(web, bad)
        assert page.status_code == 400
        with pytest.raises(auth.LinkInvalid) as why:
            await svc.links.consume(bad)
        assert why.value.reason == "invalid"
    # A valid signature on a nonce we never issued (or for someone else) is refused too.
    other = URLSafeTimedSerializer(web.settings.secret_key, salt="sebaya-sign-in").dumps(
        {"e": "E999", "n": "never-issued"})
    with pytest.raises(auth.LinkInvalid):
        await svc.links.consume(other)


async def test_cookie_writes_need_the_csrf_token(web: WebEnv) -> None:
    pid, _ = await web.pairing(mentor="M310", mentee="E310")
    session = await auth.create_session(web.pool, "participant", "E310", days=1)
    browser = web.http(cookies={"sebaya_session": session})
    goals = {"goals": [{"goal_id": "g1", "title": "Belajar SQL", "success_measure": "laporan"}]}
    r = await browser.put(f"/api/v1/pairings/{pid}/goals", json=goals)
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    r = await browser.put(f"/api/v1/pairings/{pid}/goals", json=goals,
                          headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code == 403
    form = {"title_1": "Belajar SQL", "measure_1": "laporan sendiri"}
    r = await browser.post(f"/pairings/{pid}/set_goals", data=form)
    assert r.status_code == 403 and "csrf_failed" in r.text
    # Another session's token does not fit this one.
    other = await auth.create_session(web.pool, "participant", "E310", days=1)
    r = await browser.post(f"/pairings/{pid}/set_goals", data={
        **form, "csrf_token": auth.csrf_token(web.settings.secret_key, other)})
    assert r.status_code == 403
    r = await browser.post(f"/pairings/{pid}/set_goals", data={
        **form, "csrf_token": auth.csrf_token(web.settings.secret_key, session)})
    assert r.status_code == 303, r.text
    # Bearer tokens are not sent by browsers on their own: no CSRF token needed.
    coordinator = await web.staff("coordinator")
    assert (await coordinator.post("/api/v1/cohorts/nope/departures", json={
        "employee_id": "E1", "left_on": "2027-01-01"})).status_code == 404


async def test_a_participant_signs_in_through_the_mail(temporal_env: Any, db_pool: Any,
                                                       task_queue: str, tmp_path: Any) -> None:
    """The whole path: the page asks, a real SMTP channel sends to the mail catcher, the link
    in the caught mail opens the Continue page, the POST starts the session."""
    import re

    from delivery.catcher import MailCatcher
    from delivery.channels import SmtpChannel
    from tests.web.conftest import web_env_for

    async with MailCatcher(tmp_path / "mail") as catcher:
        channel = SmtpChannel("127.0.0.1", catcher.port, sender="Sebaya <sebaya@example.co.id>",
                              tls="none")
        async with web_env_for(temporal_env, db_pool, task_queue, channel=channel) as web:
            await add_person(web, "E320", "dewi@example.co.id")
            browser = web.http()
            asked = await browser.post("/sign-in", data={"email": "dewi@example.co.id"})
            assert asked.status_code == 202
            mails = catcher.messages()
            assert len(mails) == 1 and mails[0].recipients == ["dewi@example.co.id"]
            body = mails[0].parsed().get_body(preferencelist=("plain",))
            assert body is not None
            text = body.get_content()
            links = re.findall(r"http://testserver/auth/magic\?token=[\w.\-]+", text)
            assert len(set(links)) == 1, text
            link = links[0].removeprefix("http://testserver")
            page = await browser.get(link)
            assert page.status_code == 200 and "Lanjutkan" in page.text
            token = re.search(r'name="token" value="([^"]+)"', page.text)
            assert token is not None
            done = await browser.post("/auth/magic", data={"token": token.group(1)})
            assert done.status_code == 303
            me = await browser.get("/api/v1/me")
            assert me.json()["subject"] == "E320"
            home = await browser.get("/")
            assert home.status_code == 200
            again = await web.http().post("/auth/magic", data={"token": token.group(1)})
            assert again.status_code == 400
