"""The redaction facility: registered secrets are masked in text, bytes, streams, logs and responses."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from crmpulse import redact


def test_a_registered_secret_is_masked_in_every_escaping_an_output_uses() -> None:
    secret = 'p@ss "w<o>rd" &/?'
    redact.register(secret)
    assert redact.redact(f"raw {secret}") == "raw ****"
    assert secret not in redact.redact(json.dumps({"x": secret}))
    assert "****" in redact.redact(json.dumps({"x": secret}))
    assert redact.redact("<p>p@ss &quot;w&lt;o&gt;rd&quot; &amp;/?</p>") == "<p>****</p>"
    assert redact.redact("q=p%40ss%20%22w%3Co%3Erd%22%20%26%2F%3F") == "q=****"
    assert redact.redact_bytes(f"b {secret}".encode()) == b"b ****"


def test_short_values_are_not_registered_so_outputs_stay_readable() -> None:
    redact.register("80")
    assert redact.redact("port 80") == "port 80"


def test_guarded_streams_and_every_log_level_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    redact.register("log-secret-1234")
    logger = logging.getLogger("crmpulse.test_redact")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with redact.guard_outputs():
            print("printed log-secret-1234")
            print("to stderr log-sec", end="", file=sys.stderr)
            print("ret-1234 in two writes", file=sys.stderr)
            for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
                logger.log(level, "value=%s", "log-secret-1234")
            try:
                raise ValueError("boom log-secret-1234")
            except ValueError:
                logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    captured = capsys.readouterr()
    assert captured.out == "printed ****\n"
    assert captured.err == "to stderr **** in two writes\n"
    logged = stream.getvalue()
    assert logged.count("value=****") == 4
    assert "ValueError: boom ****" in logged
    assert "log-secret-1234" not in logged


def test_responses_of_a_wrapped_app_are_redacted_whole_and_streamed() -> None:
    secret = "resp-secret-98765"
    redact.register(secret)

    async def whole(request: Request) -> Response:
        return PlainTextResponse(f"a {secret} b")

    async def streamed(request: Request) -> Response:
        async def chunks():  # the secret straddles two chunks
            yield b"start resp-sec"
            yield b"ret-98765 middle "
            yield secret.encode() + b" end"
        return StreamingResponse(chunks())

    app = redact.redacting_app(Starlette(routes=[Route("/whole", whole), Route("/streamed", streamed)]))

    async def fetch() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get("/whole"), await client.get("/streamed")

    whole_response, streamed_response = asyncio.run(fetch())
    assert whole_response.text == "a **** b"
    assert whole_response.headers["content-length"] == str(len("a **** b"))
    assert streamed_response.text == "start **** middle **** end"
