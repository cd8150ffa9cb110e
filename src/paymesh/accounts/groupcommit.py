"""Group commit: many concurrent ``CreateTransfers`` calls, one database transaction.

A commit (an fsync on PostgreSQL with synchronous_commit=on, or on SQLite
with synchronous=FULL) costs far more than deciding a transfer, so
:class:`GroupCommitStore` queues the batches of concurrent callers and a
worker applies everything queued as one merged batch, in one transaction.
There is no artificial wait: what arrives while a transaction runs goes into
the next one, so batches grow with load and stay at one under no load.

Each caller still gets its own per-transfer results, and only after the
transaction that holds its transfers has committed. Merging does not change
the ledger's semantics: the domain already decides a batch item by item,
each item under its own tenant, and a linked chain never crosses from one
caller's batch into another's (a batch that ends inside an open chain is
applied on its own, where the domain answers ``linked_event_chain_open``).
If the merged transaction fails, every caller in it gets the error and may
retry: transfer ids make the retry safe. A caller that gives up while still
queued (cancelled, e.g. by its gRPC deadline) is dropped from the queue, so
nothing it asked for commits after it stopped waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

from paymesh.accounts.domain import (
    Account,
    AccountsOutcome,
    BankAccount,
    Transfer,
    TransferResult,
    TransfersOutcome,
)
from paymesh.accounts.ports import AccountsStore, Entry
from paymesh.platform.clock import Clock
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Background

__all__ = ["GroupCommitStore"]

log = get_logger(__name__)


@dataclass
class _Pending:
    transfers: list[Transfer]
    done: asyncio.Future[TransfersOutcome]


class GroupCommitStore:
    """An :class:`AccountsStore` whose ``create_transfers`` coalesces concurrent calls."""

    def __init__(
        self,
        store: AccountsStore,
        clock: Clock,
        *,
        max_transfers: int = 8190,
        workers: int = 1,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max = max_transfers
        self._workers = workers
        self._queue: deque[_Pending] = deque()
        self._ready = asyncio.Condition()
        self._background = Background("group-commit")
        # Sizes of the merged batches, for the benchmark and the logs.
        self.batches = 0
        self.merged_transfers = 0

    def start(self) -> None:
        """Start the commit workers (PostgreSQL gains from two overlapping; SQLite from one)."""
        for n in range(self._workers):
            self._background.spawn(self._work(), name=f"group-commit-{n}")

    async def stop(self) -> None:
        """Stop the workers; calls still queued fail and may be retried."""
        await self._background.stop()
        while self._queue:
            item = self._queue.popleft()
            if not item.done.done():
                item.done.set_exception(RuntimeError("the ledger is stopping"))

    async def create_transfers(
        self, batch: Sequence[Transfer], tenant_id: str | None, now_us: int
    ) -> TransfersOutcome:
        """Apply `batch` in the next group commit; answer once it is durable."""
        items = (
            list(batch) if tenant_id is None else [replace(t, tenant_id=tenant_id) for t in batch]
        )
        if not self._background.running or not items or items[-1].flags.linked:
            return await self._store.create_transfers(items, None, now_us)
        pending = _Pending(items, asyncio.get_running_loop().create_future())
        async with self._ready:
            self._queue.append(pending)
            self._ready.notify()
        return await pending.done

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        size = 0
        while self._queue and (not taken or size + len(self._queue[0].transfers) <= self._max):
            item = self._queue.popleft()
            if item.done.cancelled():
                # The caller gave up (its deadline passed, it was cancelled): what it
                # asked for must not commit behind its back. A caller that resolves an
                # unknown outcome by looking the transfer up relies on this.
                continue
            taken.append(item)
            size += len(item.transfers)
        return taken

    async def _work(self) -> None:
        while True:
            async with self._ready:
                await self._ready.wait_for(lambda: bool(self._queue))
                taken = self._take()
            if not taken:  # everything queued was given up
                continue
            merged = [t for item in taken for t in item.transfers]
            try:
                outcome = await self._store.create_transfers(merged, None, self._clock.now_us())
            except asyncio.CancelledError:
                for item in taken:
                    if not item.done.done():
                        item.done.set_exception(RuntimeError("the ledger is stopping"))
                raise
            except Exception as exc:
                log.warning("group_commit_failed", callers=len(taken), error=repr(exc))
                for item in taken:
                    if not item.done.done():
                        item.done.set_exception(exc)
                continue
            self.batches += 1
            self.merged_transfers += len(merged)
            offset = 0
            for item in taken:
                n = len(item.transfers)
                if not item.done.done():
                    item.done.set_result(_slice(outcome, offset, n))
                offset += n

    # Everything else goes straight to the store.

    async def create_accounts(
        self, batch: Sequence[Account], tenant_id: str, now_us: int
    ) -> AccountsOutcome:
        return await self._store.create_accounts(batch, tenant_id, now_us)

    async def lookup_accounts(self, ids: Sequence[str], tenant_id: str) -> list[Account]:
        return await self._store.lookup_accounts(ids, tenant_id)

    async def set_bank_account(
        self, account_id: str, tenant_id: str, bank: BankAccount | None
    ) -> Account:
        return await self._store.set_bank_account(account_id, tenant_id, bank)

    async def lookup_transfers(self, ids: Sequence[str], tenant_id: str) -> list[Transfer]:
        return await self._store.lookup_transfers(ids, tenant_id)

    async def list_entries(
        self, account_id: str, tenant_id: str, limit: int, starting_after: str
    ) -> tuple[list[Entry], bool]:
        return await self._store.list_entries(account_id, tenant_id, limit, starting_after)

    async def expire_due(self, now_us: int, limit: int) -> list[Transfer]:
        return await self._store.expire_due(now_us, limit)

    async def balances_as_of(self, account_id: str, tenant_id: str, as_of_us: int) -> Account:
        return await self._store.balances_as_of(account_id, tenant_id, as_of_us)

    async def list_accounts(
        self, tenant_id: str, limit: int, starting_after: str
    ) -> tuple[list[Account], bool]:
        return await self._store.list_accounts(tenant_id, limit, starting_after)


def _slice(outcome: TransfersOutcome, offset: int, n: int) -> TransfersOutcome:
    """One caller's share of a merged outcome (its results and stored transfers)."""
    results = outcome.results[offset : offset + n]
    stored = outcome.transfers[offset : offset + n]
    created = [
        t for r, t in zip(results, stored, strict=True) if r is TransferResult.OK and t is not None
    ]
    return TransfersOutcome(results, stored, created, {})
