"""The delivery policy: strict parsing, what counts as infrastructure, safe error text."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from paymesh.contracts.events import Event
from paymesh.launcher import delivery_policy
from paymesh.platform.delivery import (
    ConsumerHealth,
    DeliveryPolicy,
    MalformedEvent,
    dead_letter_topic,
    describe_error,
    is_infrastructure,
    parse_event,
)
from paymesh.settings import Settings
from tests.conftest import free_port

GOOD = Event(
    id="evt_1", source="test", type="payment.succeeded", subject="pay_1",
    time="2026-01-01T00:00:00Z", tenant="ten_1", data={"n": 1},
)  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"\xff\xfe{", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"id": "evt_1"}', "missing attributes: source"),
        (GOOD.to_json().replace(b'"id":"evt_1"', b'"id":7'), "not strings: id"),
        (GOOD.to_json().replace(b'"data":{"n":1}', b'"data":[1]'), "data is not"),
    ],
)
def test_a_record_that_is_not_an_event_envelope_is_malformed(raw: bytes | None, why: str) -> None:
    with pytest.raises(MalformedEvent, match=why):
        parse_event(raw)


def test_a_good_envelope_parses_to_the_event() -> None:
    assert parse_event(GOOD.to_json()) == GOOD


def test_the_dead_letter_topic_is_the_topic_with_dlq_appended() -> None:
    assert dead_letter_topic("ns.paymesh.payments.v1") == "ns.paymesh.payments.v1.dlq"


def test_a_refused_connection_is_infrastructure_and_a_duplicate_row_is_not(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConnectionRefusedError) as refused:
        socket.create_connection(("127.0.0.1", free_port()), timeout=1)
    assert is_infrastructure(refused.value)

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id TEXT PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO t VALUES ('a')"))
    with pytest.raises(sa.exc.IntegrityError) as duplicate, engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": "a"})
    assert not is_infrastructure(duplicate.value)
    assert not is_infrastructure(ValueError("bad data"))
    # Wrapped errors count by their cause.
    wrapped = RuntimeError("handler failed")
    wrapped.__cause__ = ConnectionResetError("peer gone")
    assert is_infrastructure(wrapped)


def test_an_error_description_keeps_no_statement_parameters_or_url_credentials(
    tmp_path: Path,
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id TEXT PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO t VALUES ('s3cr3t-value')"))
    with pytest.raises(sa.exc.IntegrityError) as duplicate, engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": "s3cr3t-value"})
    kind, message = describe_error(duplicate.value)
    assert kind == "sqlalchemy.exc.IntegrityError"
    assert "UNIQUE constraint failed" in message
    assert "s3cr3t" not in message
    assert "INSERT" not in message

    kind, message = describe_error(OSError("cannot reach postgresql://app:hunter2@db:5432/x"))
    assert "hunter2" not in message
    assert "db:5432/x" in message
    assert len(describe_error(ValueError("x" * 10_000))[1]) == 500


def test_backoff_doubles_up_to_its_cap_and_only_non_infrastructure_errors_give_up() -> None:
    policy = DeliveryPolicy(max_attempts=3, backoff_s=0.5, backoff_max_s=3.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert not policy.gives_up(2, ValueError())
    assert policy.gives_up(3, ValueError())
    assert not policy.gives_up(300, ConnectionRefusedError())


def test_the_kafka_settings_set_the_retry_policy_of_both_buses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAYMESH_KAFKA__MAX_ATTEMPTS", "4")
    monkeypatch.setenv("PAYMESH_KAFKA__RETRY_BACKOFF_S", "0.25")
    monkeypatch.setenv("PAYMESH_KAFKA__RETRY_BACKOFF_MAX_S", "8")
    policy = delivery_policy(Settings())
    assert (policy.max_attempts, policy.backoff_s, policy.backoff_max_s) == (4, 0.25, 8.0)
    monkeypatch.setenv("PAYMESH_KAFKA__RETRY_BACKOFF_S", "9")
    with pytest.raises(ValidationError, match="retry_backoff_s must not exceed"):
        Settings()


def test_a_consumer_is_unready_until_assigned_and_while_dead_and_only_for_its_groups() -> None:
    health = ConsumerHealth()
    assert health.unready() == []
    health.joining("risk", "kafka")
    assert health.unready("risk") == ["risk/kafka: not assigned yet"]
    assert health.unready("webhooks") == []
    assert health.healthy("risk")  # joining is not dead
    health.assigned("risk", "kafka")
    assert health.unready("risk") == []
    health.down("risk", "kafka", ConnectionRefusedError())
    assert health.unready("risk") == ["risk/kafka: dead (builtins.ConnectionRefusedError)"]
    health.joining("risk", "kafka")  # restarted: dead until it polls again, then joining
    assert health.unready() == ["risk/kafka: dead (builtins.ConnectionRefusedError)"]
    health.up("risk", "kafka")
    assert health.unready() == ["risk/kafka: not assigned yet"]
