"""The exporter's basic auth cannot be used to stall scrapes or to tell valid user names apart.

bcrypt is slow on purpose. Checked on the event loop, a wrong password stalls every
other request for as long as the hash takes; checked against a cheaper dummy hash, an
unknown user answers faster than a known one. Both are exercised on the real
middleware with real bcrypt hashes.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import bcrypt

from crmpulse.probes.webconfig import basic_auth_middleware, load_web_config


def header(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


async def ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def request(app: Any, authorization: bytes) -> int:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics",
             "headers": [(b"authorization", authorization)]}
    await app(scope, None, send)
    return int(sent[0]["status"])


def test_a_slow_wrong_password_check_does_not_hold_up_an_authenticated_scrape(tmp_path: Path) -> None:
    # a cost-15 hash takes about a second to check: long enough to see who answers first
    slow = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=15)).decode()
    fast = bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  admin: '{slow}'\n  prometheus: '{fast}'\n")
    app = basic_auth_middleware(ok_app, load_web_config(str(tmp_path / "web.yml")))

    async def scenario() -> tuple[list[int], list[int]]:
        assert await request(app, header("prometheus", "scrape-pass")) == 200  # now cached
        wrong = asyncio.ensure_future(request(app, header("admin", "wrong")))
        for _ in range(3):
            await asyncio.sleep(0)  # the wrong password's check is under way
        scrape = asyncio.ensure_future(request(app, header("prometheus", "scrape-pass")))
        done, _ = await asyncio.wait({wrong, scrape}, return_when=asyncio.FIRST_COMPLETED)
        first = [task.result() for task in done]
        return first, [await wrong, await scrape]

    first, results = asyncio.run(scenario())
    assert first == [200]          # the scrape answered while bcrypt was still working
    assert results == [401, 200]


def test_an_unknown_user_is_checked_against_a_dummy_as_dear_as_the_configured_hashes(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=12)).decode()
    cheap = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=5)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n  ci: '{cheap}'\n")
    config = load_web_config(str(tmp_path / "web.yml"))
    assert config._dummy[:7] == b"$2b$12$"
    assert config.check(header("nobody", "pw").decode()) is False
    assert config.check(header("prometheus", "pw").decode()) is True
