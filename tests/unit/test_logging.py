"""Log lines: one JSON object each, whoever logs (structlog or a library through
logging), with the request and trace ids bound, and no secret at any depth."""

from __future__ import annotations

import io
import json
import logging
import secrets
from typing import Any

import pytest
from confluent_kafka import Producer
from opentelemetry import trace

from paymesh.platform.logging import (
    KAFKA_LOGGER,
    REDACTED,
    bind_request_id,
    get_logger,
    json_formatter,
    reset_request_id,
    valid_request_id,
)
from tests.conftest import free_port
from tests.leaks import find_leaks
from tests.loglines import captured

log = get_logger("paymesh.tests.logging")


def _one(found: list[dict[str, Any]], event: str) -> dict[str, Any]:
    [line] = [f for f in found if f["event"] == event]
    return line


def test_structlog_and_library_lines_are_json_with_level_timestamp_and_logger() -> None:
    with captured() as found:
        log.info("structlog_line", n=1)
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
        logging.getLogger("grpc._server").warning("grpc says %s", "hi")
        KAFKA_LOGGER.error("FAIL|rdkafka#producer-1| broker down")
        logging.getLogger("alembic.runtime.migration").warning("alembic warns")
        logging.getLogger("httpx").warning("httpx warns")
    by_event = {f["event"]: f for f in found}
    assert by_event["structlog_line"]["logger"] == "paymesh.tests.logging"
    assert by_event["Started server process [42]"]["logger"] == "uvicorn.error"
    assert by_event["grpc says hi"]["level"] == "warning"
    assert by_event["FAIL|rdkafka#producer-1| broker down"]["logger"] == "librdkafka"
    assert by_event["alembic warns"]["logger"] == "alembic.runtime.migration"
    assert by_event["httpx warns"]["logger"] == "httpx"
    for f in found:
        assert {"timestamp", "level", "logger", "event"} <= f.keys(), f
        assert f["timestamp"].endswith("Z")


def test_an_exception_is_one_line_with_its_traceback_as_a_field() -> None:
    with captured() as found:
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("it_failed")
            logging.getLogger("asyncio").exception("library failed")
    assert "ValueError: boom" in _one(found, "it_failed")["exception"]
    assert _one(found, "it_failed")["level"] == "error"
    assert "ValueError: boom" in _one(found, "library failed")["exception"]


def test_a_bound_request_id_is_in_every_line_until_reset() -> None:
    with captured() as found:
        token = bind_request_id("req-1")
        log.info("inside")
        logging.getLogger("sqlalchemy.engine").warning("inside too")
        reset_request_id(token)
        log.info("outside")
    assert _one(found, "inside")["request_id"] == "req-1"
    assert _one(found, "inside too")["request_id"] == "req-1"
    assert "request_id" not in _one(found, "outside")


def test_trace_and_span_ids_are_those_of_the_active_span_and_absent_without_one() -> None:
    context = trace.SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    with captured() as found:
        with trace.use_span(trace.NonRecordingSpan(context)):
            log.info("in_span")
            logging.getLogger("uvicorn.error").info("library in span")
        log.info("no_span")
    for event in ("in_span", "library in span"):
        assert _one(found, event)["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert _one(found, event)["span_id"] == "00f067aa0ba902b7"
    assert "trace_id" not in _one(found, "no_span")
    assert "span_id" not in _one(found, "no_span")


def test_secrets_are_redacted_at_any_depth_and_by_their_look_whatever_the_key() -> None:
    jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJjbGlfMSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
    client_secret = "sk_" + secrets.token_urlsafe(32)
    with captured() as found:
        log.info(
            "nested",
            request={"headers": {"Authorization": f"Bearer {jwt}"}, "form": {"password": "pw"}},
            attempts=[{"note": f"sent {jwt}"}, ("x", {"client_secret": "hidden-value-1"})],
            url="https://m.example/hook?client_secret=abcdef&ok=1",
            text=f'the body was {{"client_secret": "{client_secret}"}}',
            plain=client_secret,
            header="Basic Y2xpOnNlY3JldA==",
            amount=100,
            payment_id="pay_123",
        )
        logging.getLogger("httpx").warning("POST /v1/oauth/token?access_token=%s", jwt)
    line = _one(found, "nested")
    assert line["request"] == {
        "headers": {"Authorization": REDACTED},
        "form": {"password": REDACTED},
    }
    assert line["attempts"] == [{"note": f"sent {REDACTED}"}, ["x", {"client_secret": REDACTED}]]
    assert line["url"] == f"https://m.example/hook?client_secret={REDACTED}&ok=1"
    assert line["text"] == f'the body was {{"client_secret": "{REDACTED}"}}'
    assert line["plain"] == REDACTED
    assert line["header"] == f"Basic {REDACTED}"
    assert (line["amount"], line["payment_id"]) == (100, "pay_123")
    library = _one(found, f"POST /v1/oauth/token?access_token={REDACTED}")
    assert library["logger"] == "httpx"
    everything = json.dumps(found)
    for secret in (jwt, client_secret, "hidden-value-1", "abcdef", "Y2xpOnNlY3JldA=="):
        assert secret not in everything


def test_a_secret_in_an_exception_message_is_redacted_in_its_traceback() -> None:
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJjbGlfMiJ9.c2lnbmF0dXJlMg"
    with captured() as found:
        try:
            raise RuntimeError(f"refused Bearer {token}")
        except RuntimeError:
            log.exception("refused")
    assert token not in _one(found, "refused")["exception"]
    assert f"Bearer {REDACTED}" in _one(found, "refused")["exception"]


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("abc-123", "abc-123"),
        ("0" * 128, "0" * 128),
        (b"from-grpc", "from-grpc"),
        ("0" * 129, None),
        ("", None),
        ("has space", None),
        ("line\nbreak", None),
        ("caf\u00e9", None),
        (b"\xff\xfe", None),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", None),  # a token is no request id
        (None, None),
    ],
)
def test_an_incoming_request_id_is_kept_only_when_short_printable_and_not_a_token(
    incoming: str | bytes | None, kept: str | None
) -> None:
    assert valid_request_id(incoming) == kept


def test_the_leak_checker_finds_a_secret_that_was_logged_and_nothing_else() -> None:
    secret = secrets.token_hex(24)  # no secret's look: only the checker can find it
    other = secrets.token_urlsafe(32)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("paymesh.tests.leak-checker")
    logger.addHandler(handler)
    logger.propagate = False  # this secret is for the checker only, not the session's check
    try:
        logger.warning("a careless line with %s inside", secret)
        logger.warning("an innocent line")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    text = out.getvalue()
    assert secret in text  # not redacted: nothing says it is a secret but the checker
    [leak] = find_leaks([secret, other], [("unit", text)])
    assert leak.source == "unit"
    assert "a careless line" in leak.line
    assert secret not in leak.line  # the report masks it
    assert find_leaks([other], [("unit", text)]) == []
    # Glued to other characters of its alphabet, it is still found.
    assert find_leaks([secret], [("unit", f"x=abc{secret}def")])
    assert find_leaks([other], [("unit", "no secret here")]) == []


def test_librdkafkas_own_lines_come_through_logging_as_json() -> None:
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "logger": KAFKA_LOGGER})
    with captured() as found:
        for _ in range(20):
            producer.poll(0.1)  # librdkafka's log lines are served by poll()
    producer.flush(0)
    assert any(x["logger"] == "librdkafka" and "Connection refused" in x["event"] for x in found)
