"""The event contract: every event type is declared once, producers cannot make another,
and each payload reads back as the message it was made from."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.events import (
    CONTRACT,
    PAYMENT_SUCCEEDED,
    PUBLIC_EVENT_TYPES,
    TOPIC_PAYMENTS,
    Event,
    UnknownEventType,
    new_event,
    payload_of,
)
from paymesh.contracts.objects import MalformedPayload, from_json, to_json
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.platform.db import Database
from paymesh.platform.outbox import append, outbox_table

SRC = Path(__file__).resolve().parents[2] / "src" / "paymesh"
CONTRACT_MODULE = SRC / "contracts" / "events.py"
# The nouns events are about: a literal "<noun>.<word>" in src/ is an event type.
NOUNS = sorted({t.split(".", 1)[0] for t in CONTRACT})
EVENT_TYPE_SHAPE = re.compile(rf"^({'|'.join(NOUNS)})\.[a-z_]+$")
# The gateway's audit log names its actions the same way ("webhook_endpoint.created"):
# those are the action argument of these calls, not event types.
AUDIT_CALLS = {"audit", "record"}
# Names of the same shape that are not event types: risk's inbox consumer.
NOT_EVENT_TYPES = {"risk.payer_stats"}


def _hand_written_modules() -> list[Path]:
    return [
        p
        for p in sorted(SRC.rglob("*.py"))
        if p != CONTRACT_MODULE
        and not re.search(r"contracts/[a-z]+/v1/", p.as_posix())
        and "migrations" not in p.parts
    ]


def _event_type_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    audit_args: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in AUDIT_CALLS:
                audit_args.update(id(n) for a in node.args for n in ast.walk(a))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in audit_args
            and node.value not in NOT_EVENT_TYPES
            and (node.value in CONTRACT or EVENT_TYPE_SHAPE.match(node.value))
        ):
            where = path.relative_to(SRC.parent) if path.is_relative_to(SRC.parent) else path
            found.append(f"{where}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_of_src_spells_an_event_type_outside_the_contract() -> None:
    modules = _hand_written_modules()
    assert len(modules) > 50
    found = [hit for path in modules for hit in _event_type_literals(path)]
    assert found == [], "use the constants of paymesh.contracts.events:\n" + "\n".join(found)


def test_the_static_check_sees_an_event_type_spelled_elsewhere(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text('KIND = "payment.partially_refunded"\nOLD = "payment.succeeded"\n')
    assert [h.split(": ", 1)[1] for h in _event_type_literals(module)] == [
        "'payment.partially_refunded'",
        "'payment.succeeded'",
    ]


def test_the_static_check_leaves_audit_actions_alone() -> None:
    assert _event_type_literals(SRC / "gateway" / "features" / "webhooks" / "api.py") == []


def test_a_producer_cannot_make_an_event_type_the_contract_does_not_declare() -> None:
    with pytest.raises(UnknownEventType, match=r"payment\.partially_refunded"):
        new_event(
            "payment.partially_refunded", ppb.Payment(id="pay_1"), event_id="evt_1",
            source="/t", subject="pay_1", time_us=0, tenant="ten_1",
        )  # fmt: skip


def test_a_producer_cannot_put_another_payload_in_a_declared_type() -> None:
    with pytest.raises(UnknownEventType, match=r"paymesh\.payments\.v1\.Payment"):
        new_event(
            PAYMENT_SUCCEEDED, ppb.Refund(id="re_1"), event_id="evt_1",
            source="/t", subject="re_1", time_us=0, tenant="ten_1",
        )  # fmt: skip


async def test_the_outbox_refuses_an_event_of_a_type_the_contract_does_not_declare(
    tmp_path: Path,
) -> None:
    metadata = sa.MetaData()
    outbox = outbox_table(metadata)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    good = new_event(
        PAYMENT_SUCCEEDED, ppb.Payment(id="pay_1"), event_id="evt_1",
        source="/t", subject="pay_1", time_us=0, tenant="ten_1",
    )  # fmt: skip
    try:
        async with db.transaction() as conn:
            await conn.run_sync(metadata.create_all)
        bad = Event(**{**good.__dict__, "id": "evt_2", "type": "payment.partially_refunded"})
        with pytest.raises(UnknownEventType, match=r"payment\.partially_refunded"):
            async with db.transaction() as conn:
                await append(conn, outbox, TOPIC_PAYMENTS, bad)
        async with db.transaction() as conn:
            await append(conn, outbox, TOPIC_PAYMENTS, good)
        async with db.read() as conn:
            rows = (await conn.execute(sa.select(outbox.c.event_id))).scalars().all()
        assert rows == ["evt_1"]
    finally:
        await db.dispose()


SAMPLES = [
    ppb.Payment(
        id="pay_1", tenant_id="ten_1", status="succeeded", amount=1_000, currency="USD",
        capture_method=ppb.CAPTURE_METHOD_MANUAL, amount_captured=1_000, fee=30,
        payer_account_id="acct_a", payee_account_id="acct_b", metadata={"order": "42"},
        context=ppb.PaymentContext(ip="203.0.113.7", country="US"),
        risk=ppb.RiskAssessment(decision="approve", score=12, reasons=["r"], rules_version="7"),
        created_at_us=1_767_225_600_000_000, updated_at_us=1_767_225_601_500_000,
    ),
    ppb.Refund(id="re_1", tenant_id="ten_1", payment_id="pay_1", amount=5, currency="USD",
               status="failed", failure_code="x", created_at_us=1_767_225_600_000_000),
    ppb.Topup(id="tu_1", tenant_id="ten_1", account_id="acct_a", amount=5, currency="EUR",
              status="succeeded", created_at_us=1_767_225_600_000_000),
    ppb.Payout(id="po_1", tenant_id="ten_1", account_id="acct_a", amount=5, currency="EUR",
               status="succeeded", created_at_us=1_767_225_600_000_000),
    ppb.Transfer(id="tr_1", tenant_id="ten_1", from_account_id="a", to_account_id="b",
                 amount=5, currency="EUR", status="succeeded", created_at_us=1_767_225_600_000_000),
    rpb.DecisionMade(payment_id="pay_1", amount=2**53 + 1, outcome="review", score=40,
                     reasons=[rpb.Reason(code="velocity", rule_id="v1", message="m")]),
    rpb.ReviewResolved(payment_id="pay_1", tenant_id="ten_1", resolution="approve"),
    apb.TransferExpired(pending_id="h_1", transfer_id="v_1", amount=9, currency="USD"),
    wpb.EndpointDisabled(id="we_1", object="webhook_endpoint", url="https://x.test/",
                         reason="r", disabled_at="2026-01-01T00:00:00Z"),
    ppb.TopupReversal(id="tu_1", tenant_id="ten_1", topup_id="tu_1", account_id="acct_a",
                      amount=5, currency="EUR", status="succeeded",
                      created_at_us=1_767_225_600_000_000),
    ppb.PayoutReturn(id="po_1", tenant_id="ten_1", payout_id="po_1", account_id="acct_a",
                     amount=5, currency="EUR", status="succeeded", reason="AC04",
                     created_at_us=1_767_225_600_000_000),
]  # fmt: skip


def test_every_payload_of_the_contract_has_a_sample_here() -> None:
    assert {type(s) for s in SAMPLES} == {spec.payload for spec in CONTRACT.values()}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_every_payload_reads_back_as_the_message_it_was_made_from(sample: object) -> None:
    data = to_json(sample)  # type: ignore[arg-type]
    back = from_json(type(sample), data)  # type: ignore[arg-type]
    if hasattr(back, "tenant_id") and type(back) is not rpb.ReviewResolved:
        back.tenant_id = sample.tenant_id  # type: ignore[attr-defined]  # not public
    assert back == sample


def test_a_public_object_uses_the_rest_apis_field_names_and_keeps_money_a_number() -> None:
    data = to_json(SAMPLES[0])
    assert data["created"] == "2026-01-01T00:00:00Z"
    assert data["updated"] == "2026-01-01T00:00:01.500000Z"
    assert "created_at" not in data
    assert "created_at_us" not in data
    assert "tenant_id" not in data
    assert data["object"] == "payment"
    assert data["description"] is None
    assert to_json(SAMPLES[5])["amount"] == 2**53 + 1


def test_a_reader_ignores_fields_it_does_not_know_and_reads_an_older_form() -> None:
    data = {**to_json(SAMPLES[0]), "surcharge": {"amount": 5}, "created_at": "2026-01-01T00:00:00Z"}
    payment = from_json(ppb.Payment, data)
    assert payment.amount_captured == 1_000
    older = {"id": "pay_1", "payer_account_id": "acct_a", "amount": 1, "currency": "USD",
             "description": "", "created_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    assert from_json(ppb.Payment, older).payer_account_id == "acct_a"


@pytest.mark.parametrize(
    "data",
    [{"amount": "1000"}, {"amount": True}, {"amount": 1.5}, {"metadata": {"a": 1}}, ["x"]],
)
def test_a_field_of_the_wrong_json_type_is_malformed(data: object) -> None:
    with pytest.raises(MalformedPayload):
        from_json(ppb.Payment, data)


def test_a_consumer_gets_no_payload_for_a_type_it_does_not_know() -> None:
    event = Event(
        id="evt_1", source="/future", type="payment.partially_refunded", subject="pay_1",
        time="2026-01-01T00:00:00Z", tenant="ten_1", data={"id": "pay_1"},
    )  # fmt: skip
    assert payload_of(event, ppb.Payment) is None


def test_webhook_subscribers_see_the_payments_objects_and_disabled_endpoints_only() -> None:
    assert {CONTRACT[t].payload for t in PUBLIC_EVENT_TYPES} == {
        ppb.Payment, ppb.Refund, ppb.Topup, ppb.TopupReversal, ppb.Payout, ppb.PayoutReturn,
        ppb.Transfer, wpb.EndpointDisabled,
    }  # fmt: skip
