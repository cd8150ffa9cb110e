"""The risk service in memory, called like its generated stub."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.platform.clock import Clock
from paymesh.platform.identity import Caller
from paymesh.risk.domain import RuleSet
from paymesh.risk.ports import Deps, FeatureStore, RiskStore
from tests.fakes import rpc, rpc_error

__all__ = ["T0", "FakeRisk", "risk_caller", "risk_deps"]

T0 = 1_764_168_000_000_000  # 2025-11-26T14:40:00Z


@dataclass
class FakeRisk:
    """The risk service in memory: lists and reviews per tenant, one rule set."""

    rules: rpb.RulesInfo = field(
        default_factory=lambda: rpb.RulesInfo(
            version="7",
            checksum="ab" * 32,
            source="/etc/paymesh/rules.yaml",
            loaded_at_us=T0,
            rules=[
                rpb.RuleSummary(
                    id="payer-burst",
                    kind="velocity",
                    action="decline",
                    reason="velocity_payer_count",
                    score=0,
                    description="more than 3 payments per payer per minute",
                )
            ],
            last_error="line 3: unknown rule kind 'velocityy'",
            last_error_at_us=T0 + 1_000_000,
        )
    )
    # (tenant, list) -> value -> entry
    lists: dict[tuple[str, str], dict[str, rpb.ListEntry]] = field(default_factory=dict)
    reviews: dict[str, rpb.Review] = field(default_factory=dict)
    resolve_calls: list[tuple[str, int]] = field(default_factory=list)

    def open_review(self, tenant_id: str, payment_id: str) -> None:
        self.reviews[payment_id] = rpb.Review(
            payment_id=payment_id,
            tenant_id=tenant_id,
            status=rpb.REVIEW_STATUS_OPEN,
            decision=rpb.Decision(
                payment_id=payment_id,
                outcome=rpb.OUTCOME_REVIEW,
                score=65,
                reasons=[rpb.Reason(code="amount_zscore", rule_id="unusual", message="z=4.1")],
                rules_version="7",
            ),
            amount=125_000,
            currency="USD",
            payer_account_id="acct_payer",
            payee_account_id="acct_payee",
            created_at_us=T0,
            due_at_us=T0 + 3_600_000_000,
        )

    @rpc
    async def GetRules(self, request: rpb.GetRulesRequest, *, caller: Caller) -> rpb.RulesInfo:
        return self.rules

    @rpc
    async def AddListEntry(
        self, request: rpb.AddListEntryRequest, *, caller: Caller
    ) -> rpb.ListEntry:
        entries = self.lists.setdefault((caller.tenant_id, request.list), {})
        return entries.setdefault(
            request.value,
            rpb.ListEntry(
                list=request.list,
                value=request.value,
                note=request.note,
                created_at_us=T0,
                created_by=caller.client_id,
            ),
        )

    @rpc
    async def RemoveListEntry(
        self, request: rpb.RemoveListEntryRequest, *, caller: Caller
    ) -> rpb.RemoveListEntryResponse:
        entries = self.lists.get((caller.tenant_id, request.list), {})
        return rpb.RemoveListEntryResponse(removed=entries.pop(request.value, None) is not None)

    @rpc
    async def ListListEntries(
        self, request: rpb.ListListEntriesRequest, *, caller: Caller
    ) -> rpb.ListListEntriesResponse:
        entries = self.lists.get((caller.tenant_id, request.list), {})
        values = sorted(v for v in entries if v > request.starting_after)
        page = values[: request.limit]
        return rpb.ListListEntriesResponse(
            data=[entries[v] for v in page], has_more=len(values) > request.limit
        )

    @rpc
    async def ListReviews(
        self, request: rpb.ListReviewsRequest, *, caller: Caller
    ) -> rpb.ListReviewsResponse:
        status = request.status or rpb.REVIEW_STATUS_OPEN
        mine = [
            r
            for r in sorted(self.reviews.values(), key=lambda r: r.payment_id)
            if r.tenant_id == caller.tenant_id
            and r.status == status
            and r.payment_id > request.starting_after
        ]
        return rpb.ListReviewsResponse(
            data=mine[: request.limit], has_more=len(mine) > request.limit
        )

    def _review(self, payment_id: str, caller: Caller) -> rpb.Review:
        r = self.reviews.get(payment_id)
        if r is None or r.tenant_id != caller.tenant_id:
            raise rpc_error(grpc.StatusCode.NOT_FOUND, "review_not_found", "no such review")
        return r

    @rpc
    async def GetReview(self, request: rpb.GetReviewRequest, *, caller: Caller) -> rpb.Review:
        return self._review(request.payment_id, caller)

    @rpc
    async def ResolveReview(
        self, request: rpb.ResolveReviewRequest, *, caller: Caller
    ) -> rpb.Review:
        self.resolve_calls.append((request.payment_id, request.resolution))
        r = self._review(request.payment_id, caller)
        wanted = (
            rpb.REVIEW_STATUS_APPROVED
            if request.resolution == rpb.RESOLUTION_APPROVE
            else rpb.REVIEW_STATUS_DECLINED
        )
        if r.status == wanted:
            return r
        if r.status != rpb.REVIEW_STATUS_OPEN:
            raise rpc_error(
                grpc.StatusCode.FAILED_PRECONDITION,
                "review_already_resolved",
                "the review is resolved",
            )
        r.status = wanted
        r.resolved_at_us = T0 + 60_000_000
        r.resolved_by = caller.client_id
        r.note = request.note
        return r


def risk_caller(tenant_id: str = "ten_1") -> Caller:
    """A caller of `tenant_id` with no scopes, as a use case test asks."""
    return Caller(tenant_id=tenant_id, client_id="cli_test")


def risk_deps(
    store: RiskStore, clock: Clock, rules: RuleSet, features: FeatureStore | None = None
) -> Deps:
    """The dependencies of the risk use cases, with fixed `rules`."""
    return Deps(store=store, rules=lambda: rules, clock=clock, features=features)
