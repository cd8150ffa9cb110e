"""The CloudEvents Kafka protocol binding, checked against the CloudEvents SDK: paymesh
writes structured mode the SDK reads, and reads the SDK's structured and binary
records, and its own records from before the binding (a rolling upgrade)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from paymesh.contracts.events import PAYMENT_SUCCEEDED, Event
from paymesh.platform.delivery import MalformedEvent
from paymesh.platform.kafka_binding import from_record, to_record

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
EVENT = Event(
    id="evt_pay_1_payment.succeeded", source="/paymesh/payments", type=PAYMENT_SUCCEEDED,
    subject="pay_1", time="2026-01-01T00:00:00Z", tenant="ten_1",
    data={"id": "pay_1", "object": "payment", "amount": 1_000},
)  # fmt: skip


def _sdk_message(key: bytes, value: bytes, headers: list[tuple[str, object]]) -> object:
    as_bytes = {k: v if isinstance(v, bytes) else str(v).encode() for k, v in headers}
    return ce_kafka.KafkaMessage(headers=as_bytes, key=key, value=value)


def test_a_record_is_structured_mode_with_the_content_type_and_no_ce_header() -> None:
    key, value, headers = to_record(EVENT)
    assert key == b"pay_1"
    assert dict(headers) == {"content-type": "application/cloudevents+json"}
    envelope = json.loads(value)
    for attribute in ("specversion", "id", "source", "type", "subject", "time"):
        assert envelope[attribute] == getattr(EVENT, attribute)
    assert envelope["datacontenttype"] == "application/json"


def test_the_cloudevents_sdk_reads_a_paymesh_record_as_the_same_event() -> None:
    traced = dataclasses.replace(EVENT, traceparent=TRACEPARENT)
    key, value, headers = to_record(traced)
    assert dict(headers)["traceparent"] == TRACEPARENT
    read = ce_kafka.from_kafka(_sdk_message(key, value, headers), JSONFormat())  # type: ignore[arg-type]
    assert read.get_specversion() == "1.0"
    assert read.get_id() == EVENT.id
    assert read.get_source() == EVENT.source
    assert read.get_type() == PAYMENT_SUCCEEDED
    assert read.get_subject() == "pay_1"
    assert read.get_time() == datetime(2026, 1, 1, tzinfo=UTC)
    assert read.get_datacontenttype() == "application/json"
    assert read.get_extension("tenant") == "ten_1"
    assert read.get_extension("traceparent") == TRACEPARENT
    assert read.get_data() == EVENT.data


def _sdk_event(**extra: object) -> CloudEvent:
    return CloudEvent(
        attributes={
            "id": EVENT.id, "source": EVENT.source, "type": EVENT.type, "subject": "pay_1",
            "time": datetime(2026, 1, 1, tzinfo=UTC), "datacontenttype": "application/json",
            "tenant": "ten_1", **extra,
        },
        data=EVENT.data,
    )  # fmt: skip


def test_a_binary_mode_record_of_the_sdk_is_read() -> None:
    message = ce_kafka.to_binary(_sdk_event(), JSONFormat())
    assert message.headers["ce_specversion"] == b"1.0"
    event = from_record(message.value, list(message.headers.items()))
    assert event == EVENT


def test_a_binary_mode_record_keeps_its_trace_context_attribute() -> None:
    message = ce_kafka.to_binary(_sdk_event(traceparent=TRACEPARENT), JSONFormat())
    assert from_record(message.value, list(message.headers.items())).traceparent == TRACEPARENT


def test_a_structured_mode_record_of_the_sdk_is_read() -> None:
    message = ce_kafka.to_structured(_sdk_event(), JSONFormat())
    event = from_record(message.value, list(message.headers.items()))
    assert dataclasses.replace(event, time="2026-01-01T00:00:00Z") == EVENT


def test_a_record_from_before_the_binding_is_read_as_before() -> None:
    old_headers = [("ce_id", EVENT.id), ("ce_type", EVENT.type), ("ce_tenant", "ten_1")]
    assert from_record(EVENT.to_json(), old_headers) == EVENT
    traced = [*old_headers, ("traceparent", TRACEPARENT.encode())]
    assert from_record(EVENT.to_json(), traced).traceparent == TRACEPARENT


def test_header_names_are_matched_whatever_their_case() -> None:
    event = from_record(EVENT.to_json(), [("Content-Type", b"application/cloudevents+json")])
    assert event == EVENT


@pytest.mark.parametrize(
    ("value", "headers", "why"),
    [
        (b"{}", [("content-type", b"application/cloudevents+avro")], "event format"),
        (b"{}", [("content-type", b"application/cloudevents-batch+json")], "event format"),
        (b"<p/>", [("ce_specversion", b"1.0"), ("content-type", b"text/xml")], "not JSON"),
        (b"{", [("ce_specversion", b"1.0")], "not JSON"),
        (b"[1]", [("ce_specversion", b"1.0"), ("ce_id", b"e"), ("ce_source", b"s"),
                  ("ce_type", b"t"), ("ce_subject", b"x"), ("ce_time", b"t"),
                  ("ce_tenant", b"t")], "data is not a JSON object"),
        (b"{}", [("ce_specversion", b"1.0"), ("ce_id", b"e")], "missing attributes"),
        (b"{}", [("ce_specversion", b"1.0"), ("ce_id", b"\xff")], "not UTF-8"),
    ],
)  # fmt: skip
def test_a_record_paymesh_cannot_read_is_malformed_and_says_why(
    value: bytes, headers: list[tuple[str, bytes]], why: str
) -> None:
    with pytest.raises(MalformedEvent, match=why):
        from_record(value, headers)


def test_a_header_of_another_tool_that_is_not_text_is_ignored() -> None:
    headers = [("content-type", b"application/cloudevents+json"), ("x-bin", b"\xff\xfe")]
    assert from_record(EVENT.to_json(), headers) == EVENT
