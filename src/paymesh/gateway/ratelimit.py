"""Per-client token buckets: the math, the `RateLimiter` port and its two adapters.

A bucket holds at most `capacity` tokens and gains `rate_per_s` tokens a
second; each request takes one, and a request finding less than one token
is refused. A limiter has a default policy; a call may name another one
for its key (the token endpoint's failed-attempt buckets have their own
shape), and `refund` gives a token back to a bucket (a request charged in
advance that turned out not to count). `MemoryRateLimiter` keeps the buckets in this process (the
embedded shape); `RedisRateLimiter` keeps them in Redis, updated by one Lua
script so concurrent gateways never hand out more than a bucket holds.

Failure policy: the limiter **fails open**. If Redis cannot be reached or
answers an error, the request is allowed (`Decision.degraded` is set, no
rate-limit headers are sent) and `rate_limiter_unavailable` is logged. A
payment platform should not stop taking payments because a cache is down;
authentication, scopes, idempotency, body and time limits and the services'
own checks (risk, balances) still apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from paymesh.platform.clock import Clock, SystemClock
from paymesh.platform.logging import get_logger

__all__ = [
    "BucketState",
    "Decision",
    "MemoryRateLimiter",
    "Policy",
    "RateLimiter",
    "RedisRateLimiter",
    "decide",
    "give_back",
    "take",
]

log = get_logger(__name__)


@dataclass(frozen=True)
class Policy:
    """A token bucket's shape: `capacity` tokens, refilled at `rate_per_s`."""

    capacity: int
    rate_per_s: float
    name: str = "default"

    @property
    def window_s(self) -> int:
        """Seconds an empty bucket takes to fill again (the policy's `w`)."""
        return max(1, math.ceil(self.capacity / self.rate_per_s))


@dataclass(frozen=True)
class BucketState:
    """Tokens left at `updated_us` (unix microseconds)."""

    tokens: float
    updated_us: int


@dataclass(frozen=True)
class Decision:
    """Whether one request may pass, and what to tell the client about its bucket."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int  # 0 when allowed, else >= 1: when a token will be there
    reset_s: int  # seconds until the bucket is full again
    policy: Policy | None = None
    degraded: bool = False  # the limiter could not decide and let the request through


def decide(policy: Policy, tokens: float, allowed: bool) -> Decision:
    """The decision for a bucket holding `tokens` after this request's take (or refusal)."""
    rate = policy.rate_per_s
    missing = max(0.0, policy.capacity - tokens)
    retry = 0 if allowed else max(1, math.ceil((1.0 - tokens) / rate))
    return Decision(
        allowed=allowed,
        limit=policy.capacity,
        remaining=max(0, math.floor(tokens)),
        retry_after_s=retry,
        reset_s=math.ceil(missing / rate) if missing > 0 else 0,
        policy=policy,
    )


def take(policy: Policy, state: BucketState | None, now_us: int) -> tuple[BucketState, Decision]:
    """Refill the bucket up to `now_us` and take one token if there is one.

    A clock that went backwards adds nothing (the bucket keeps its newer time).
    """
    if state is None:
        state = BucketState(float(policy.capacity), now_us)
    tokens, updated = state.tokens, state.updated_us
    if now_us > updated:
        tokens = min(float(policy.capacity), tokens + (now_us - updated) * policy.rate_per_s / 1e6)
        updated = now_us
    allowed = tokens >= 1.0
    if allowed:
        tokens -= 1.0
    return BucketState(tokens, updated), decide(policy, tokens, allowed)


def give_back(policy: Policy, state: BucketState | None, now_us: int) -> BucketState:
    """Refill the bucket up to `now_us` and return one token to it (never past its capacity)."""
    if state is None:
        return BucketState(float(policy.capacity), now_us)
    tokens, updated = state.tokens, state.updated_us
    if now_us > updated:
        tokens = tokens + (now_us - updated) * policy.rate_per_s / 1e6
        updated = now_us
    return BucketState(min(float(policy.capacity), tokens + 1.0), updated)


def _fail_open(policy: Policy) -> Decision:
    return Decision(True, policy.capacity, policy.capacity, 0, 0, policy=None, degraded=True)


class RateLimiter(Protocol):
    """Takes one token from the bucket named `key` (shaped by `policy`, else the default)."""

    policy: Policy

    async def hit(self, key: str, policy: Policy | None = None) -> Decision: ...

    async def refund(self, key: str, policy: Policy | None = None) -> None: ...

    async def aclose(self) -> None: ...


class MemoryRateLimiter:
    """Buckets in this process's memory; atomic because the event loop runs one hit at a time."""

    # Past this many buckets, full ones (no information in them) are dropped.
    MAX_BUCKETS = 100_000

    def __init__(self, policy: Policy, *, clock: Clock | None = None) -> None:
        self.policy = policy
        self._clock = clock or SystemClock()
        self._buckets: dict[str, tuple[Policy, BucketState]] = {}

    async def hit(self, key: str, policy: Policy | None = None) -> Decision:
        policy = policy or self.policy
        now = self._clock.now_us()
        held = self._buckets.get(key)
        state, decision = take(policy, held[1] if held else None, now)
        self._buckets[key] = (policy, state)
        if len(self._buckets) > self.MAX_BUCKETS:
            self._forget_full(now)
        return decision

    async def refund(self, key: str, policy: Policy | None = None) -> None:
        policy = policy or self.policy
        held = self._buckets.get(key)
        if held is not None:  # a bucket never seen is full already
            self._buckets[key] = (policy, give_back(policy, held[1], self._clock.now_us()))

    def _forget_full(self, now_us: int) -> None:
        for key, (policy, state) in list(self._buckets.items()):
            if take(policy, state, now_us)[0].tokens >= policy.capacity - 1:
                del self._buckets[key]

    async def aclose(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket; ARGV: capacity, rate per second, now (us), ttl (ms), cost (1: take a
# token if there is one; -1: give one back, never past the capacity).
# Returns {allowed (0/1), tokens left as a string (Redis truncates Lua numbers)}.
_SCRIPT = """
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
end
if now > ts then
  tokens = math.min(cap, tokens + (now - ts) * rate / 1000000)
  ts = now
end
local allowed = 0
if tonumber(ARGV[5]) < 0 then
  tokens = math.min(cap, tokens + 1)
  allowed = 1
elseif tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {allowed, tostring(tokens)}
"""


class RedisRateLimiter:
    """Buckets in Redis, each taken by one atomic Lua script (shared by every gateway).

    The time comes from the gateway's clock (instances are NTP-synchronised);
    the script never moves a bucket's time backwards, so a lagging instance
    adds no tokens. Fails open, see the module docstring.
    """

    def __init__(
        self,
        redis: Any,
        policy: Policy,
        *,
        clock: Clock | None = None,
        prefix: str = "paymesh:ratelimit:",
    ) -> None:
        self.policy = policy
        self._redis = redis
        self._clock = clock or SystemClock()
        self._prefix = prefix
        self._script = redis.register_script(_SCRIPT)

    @classmethod
    def from_url(
        cls, url: str, policy: Policy, *, clock: Clock | None = None, prefix: str | None = None
    ) -> RedisRateLimiter:
        """A limiter on a new client for `url`, with short timeouts (fail open fast).

        A burst waits for one of the pool's connections rather than failing open.
        """
        import redis.asyncio as aioredis

        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=2, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        client = aioredis.Redis.from_pool(pool)
        return cls(client, policy, clock=clock, prefix=prefix or "paymesh:ratelimit:")

    async def hit(self, key: str, policy: Policy | None = None) -> Decision:
        policy = policy or self.policy
        try:
            allowed, tokens = await self._run(key, policy, cost=1)
        except Exception as exc:  # unreachable, timeout, script error: fail open
            log.warning("rate_limiter_unavailable", error=f"{type(exc).__name__}: {exc}")
            return _fail_open(policy)
        return decide(policy, float(tokens), bool(int(allowed)))

    async def refund(self, key: str, policy: Policy | None = None) -> None:
        try:
            await self._run(key, policy or self.policy, cost=-1)
        except Exception as exc:  # the bucket just refills a little later
            log.warning("rate_limiter_unavailable", error=f"{type(exc).__name__}: {exc}")

    async def _run(self, key: str, policy: Policy, *, cost: int) -> Any:
        # A bucket untouched for twice its window is full: let Redis forget it.
        ttl_ms = 2000 * policy.window_s
        args = [policy.capacity, repr(policy.rate_per_s), self._clock.now_us(), ttl_ms, cost]
        return await self._script(keys=[self._prefix + key], args=args)

    async def ping(self) -> None:
        """Raise unless Redis answers PING (readiness)."""
        await self._redis.ping()

    async def aclose(self) -> None:
        await self._redis.aclose()
