"""Admission of money-moving requests: a bounded number at work, a bounded line, a wait limit."""

from __future__ import annotations

import asyncio

import pytest

from paymesh.gateway.admission import Admission
from paymesh.gateway.errors import Overloaded


async def _hold(admission: Admission, release: asyncio.Event, log: list[str], name: str) -> None:
    async with admission.admit():
        log.append(name)
        await release.wait()


async def test_no_more_than_the_limit_work_at_once_and_the_next_gets_in_when_one_leaves() -> None:
    admission = Admission(max_in_flight=2, max_queue=10, max_wait_s=5)
    release, log = asyncio.Event(), []
    tasks = [asyncio.create_task(_hold(admission, release, log, f"r{n}")) for n in range(3)]
    await asyncio.sleep(0.05)
    assert log == ["r0", "r1"]
    assert admission.waiting == 1
    release.set()
    await asyncio.gather(*tasks)
    assert log == ["r0", "r1", "r2"]


async def test_a_request_not_admitted_in_time_is_refused_with_a_retry_after() -> None:
    admission = Admission(max_in_flight=1, max_queue=10, max_wait_s=0.05)
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(admission, release, [], "r0"))
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded) as refused:
        async with admission.admit():
            pytest.fail("admitted while the only place was taken")
    assert refused.value.http_status == 429
    assert refused.value.code == "overloaded"
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert admission.waiting == 0
    release.set()
    await holder
    async with admission.admit():  # the place came free: admitted at once
        pass


async def test_a_full_line_refuses_at_once() -> None:
    admission = Admission(max_in_flight=1, max_queue=1, max_wait_s=5)
    release = asyncio.Event()
    tasks = [asyncio.create_task(_hold(admission, release, [], f"r{n}")) for n in range(2)]
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Overloaded):
        async with admission.admit():
            pass
    assert loop.time() - started < 0.5
    release.set()
    await asyncio.gather(*tasks)
