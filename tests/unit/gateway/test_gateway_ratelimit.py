"""The token bucket's math, on an injected clock."""

from __future__ import annotations

from paymesh.gateway.limits import rate_limit_headers
from paymesh.gateway.ratelimit import BucketState, MemoryRateLimiter, Policy, give_back, take
from tests.fakes.clock import FixedClock

POLICY = Policy(capacity=5, rate_per_s=2.0, name="client")


async def test_a_full_bucket_allows_its_burst_and_then_refuses() -> None:
    limiter = MemoryRateLimiter(POLICY, clock=FixedClock())
    decisions = [await limiter.hit("c") for _ in range(8)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]


async def test_a_refused_request_is_told_to_retry_when_a_token_is_back() -> None:
    clock = FixedClock()
    limiter = MemoryRateLimiter(Policy(capacity=2, rate_per_s=0.25), clock=clock)
    await limiter.hit("c")
    await limiter.hit("c")
    refused = await limiter.hit("c")
    assert not refused.allowed
    assert refused.retry_after_s == 4  # one token every 4 s
    clock.advance(3.9)
    assert not (await limiter.hit("c")).allowed
    clock.advance(0.1)
    assert (await limiter.hit("c")).allowed


async def test_retry_after_is_at_least_one_second_even_on_a_fast_bucket() -> None:
    limiter = MemoryRateLimiter(Policy(capacity=1, rate_per_s=1000.0), clock=FixedClock())
    await limiter.hit("c")
    assert (await limiter.hit("c")).retry_after_s == 1


def test_refill_never_exceeds_the_capacity() -> None:
    state, _ = take(POLICY, None, 0)
    state, decision = take(POLICY, state, 3_600_000_000)
    assert state.tokens == POLICY.capacity - 1
    assert decision.remaining == 4
    assert decision.reset_s == 1  # one token missing at 2/s


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    state, _ = take(POLICY, None, 10_000_000)
    later, _ = take(POLICY, state, 5_000_000)
    assert later.tokens == state.tokens - 1
    assert later.updated_us == 10_000_000


async def test_clients_have_separate_buckets() -> None:
    limiter = MemoryRateLimiter(Policy(capacity=1, rate_per_s=1.0), clock=FixedClock())
    assert (await limiter.hit("a")).allowed
    assert not (await limiter.hit("a")).allowed
    assert (await limiter.hit("b")).allowed


def test_headers_follow_the_ietf_draft() -> None:
    _, decision = take(POLICY, None, 0)
    assert rate_limit_headers(decision) == {
        "RateLimit-Policy": '"client";q=5;w=3',
        "RateLimit": '"client";r=4;t=1',
    }


async def test_a_refund_gives_one_token_back_and_never_more_than_the_capacity() -> None:
    limiter = MemoryRateLimiter(Policy(capacity=2, rate_per_s=0.001), clock=FixedClock())
    assert (await limiter.hit("c")).allowed
    assert (await limiter.hit("c")).allowed
    assert not (await limiter.hit("c")).allowed
    await limiter.refund("c")
    assert (await limiter.hit("c")).allowed
    for _ in range(5):
        await limiter.refund("c")
    assert [(await limiter.hit("c")).allowed for _ in range(3)] == [True, True, False]


def test_give_back_refills_first_and_caps_at_the_capacity() -> None:
    state, _ = take(POLICY, None, 0)
    assert give_back(POLICY, state, 0).tokens == POLICY.capacity
    empty = BucketState(0.0, 0)
    assert give_back(POLICY, empty, 1_000_000).tokens == 3.0  # 2 refilled at 2/s, 1 returned


async def test_a_call_may_shape_its_bucket_with_another_policy() -> None:
    limiter = MemoryRateLimiter(POLICY, clock=FixedClock())
    strict = Policy(capacity=1, rate_per_s=0.01, name="strict")
    first, second = await limiter.hit("s", strict), await limiter.hit("s", strict)
    assert first.allowed
    assert not second.allowed
    assert second.policy == strict
    assert (await limiter.hit("other")).limit == POLICY.capacity
