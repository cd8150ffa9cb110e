"""The registry of payment flows: one record per kind, each with its own table and ledger ids."""

from __future__ import annotations

import dataclasses

import pytest

from paymesh.payments.flows import FLOWS, metadata
from paymesh.payments.flows.base import by_kind
from paymesh.payments.tables import saga_columns

SAGA_COLUMNS = {c.name for c in saga_columns()}


def test_every_flow_has_its_own_table_with_the_saga_columns_on_the_services_metadata() -> None:
    tables = [f.table for f in FLOWS.values()]
    assert len({t.name for t in tables}) == len(tables)
    for flow in FLOWS.values():
        assert metadata.tables[flow.table.name] is flow.table
        assert SAGA_COLUMNS | {"id", "tenant_id", "status"} <= set(flow.table.c.keys()), flow.kind


def test_every_field_of_a_flat_flows_object_is_a_column_of_its_table() -> None:
    for flow in FLOWS.values():
        if flow.to_row is None:
            fields = {f.name for f in dataclasses.fields(flow.cls)}
            assert fields <= set(flow.table.c.keys()), flow.kind


def test_no_two_flows_of_one_object_id_share_a_ledger_transfer_id_with_the_topup_reversal() -> None:
    reversal = set(FLOWS["topup_reversal"].ledger_ids("tu_1"))
    others = {i for f in FLOWS.values() if f.kind != "topup_reversal" for i in f.ledger_ids("tu_1")}
    assert reversal
    assert not reversal & others
    assert all(len(i) <= 64 for i in FLOWS["topup_reversal"].ledger_ids("x" * 48))


def test_a_kind_registered_twice_is_refused() -> None:
    payment = FLOWS["payment"]
    with pytest.raises(ValueError, match="payment"):
        by_kind([payment, dataclasses.replace(payment, table=FLOWS["refund"].table)])
