"""The one background-loop helper: steps repeat, failures are survived, stop ends all."""

from __future__ import annotations

import asyncio

from paymesh.platform.loops import Background, Periodic, cancel_and_wait


async def test_a_periodic_step_repeats_survives_a_failure_and_stops() -> None:
    calls: list[int] = []

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("one bad step")

    loop = Periodic("test-loop", step, interval_s=0.01)
    loop.start()
    loop.start()  # a second start does not run a second loop
    for _ in range(200):
        if len(calls) >= 4:
            break
        await asyncio.sleep(0.01)
    assert len(calls) >= 4  # the failing second step did not end the loop
    assert loop.running
    await loop.stop()
    assert not loop.running
    seen = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == seen
    await loop.stop()  # idempotent


async def test_wake_runs_the_next_step_before_the_interval_ends() -> None:
    ran = asyncio.Event()
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            ran.set()

    loop = Periodic("slow-loop", step, interval_s=3600)
    loop.start()
    await asyncio.sleep(0.01)
    loop.wake()
    await asyncio.wait_for(ran.wait(), timeout=2)
    await loop.stop()


async def test_background_stop_gives_grace_then_cancels() -> None:
    group = Background("group")
    finished = asyncio.Event()

    async def quick() -> None:
        await asyncio.sleep(0.01)
        finished.set()

    async def forever() -> None:
        await asyncio.Event().wait()

    group.spawn(quick())
    stuck = group.spawn(forever())
    assert len(group) == 2
    await group.stop(grace_s=0.5)
    assert finished.is_set()
    assert stuck.cancelled()
    assert not group.running
    assert len(group) == 0


async def test_cancel_and_wait_tolerates_none_and_ended_tasks() -> None:
    await cancel_and_wait(None)
    task = asyncio.create_task(asyncio.sleep(10))
    await cancel_and_wait(task)
    assert task.cancelled()
    await cancel_and_wait(task)


async def test_a_periodic_that_waits_first_steps_only_after_one_interval() -> None:
    calls: list[float] = []
    loop_time = asyncio.get_running_loop().time

    async def step() -> None:
        calls.append(loop_time())

    began = loop_time()
    loop = Periodic("late-loop", step, interval_s=0.05, wait_first=True)
    loop.start()
    await asyncio.sleep(0.01)
    assert calls == []
    for _ in range(200):
        if calls:
            break
        await asyncio.sleep(0.01)
    await loop.stop()
    assert calls
    assert calls[0] - began >= 0.04
