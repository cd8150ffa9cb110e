"""The features on Redis, shared by every risk replica (the distributed shape).

Keys, under ``risk.redis_prefix`` (default ``paymesh:risk``):

- ``{prefix}:vel:{tenant}:{dimension}:{value}`` sorted set, member
  ``{payment_id}|{currency}|{amount}``, score = when the entry counts from
  (unix µs); members older than the retention are trimmed on every add, and
  the key expires after the retention when nothing is added;
- ``{prefix}:pay:{tenant}:{payment_id}`` the payment's member (``SET NX``: the
  payment is in the windows once, whoever records it first);
- ``{prefix}:payer:{tenant}:{payer}`` hash of the payer's history:
  ``first``, ``count``, ``c:{country}`` counts, and per currency ``n:``,
  ``mean:``, ``m2:`` (Welford), kept for :data:`HISTORY_TTL_S` after the
  last success;
- ``{prefix}:evt:{event_id}`` the dedupe mark of an applied event (TTL
  :data:`DEDUPE_TTL_S`; Kafka redelivers within minutes, not weeks).

Each update is one Lua script, so it is atomic: the dedupe mark and the
effect are taken together, and concurrent replicas never count twice.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from paymesh.risk.domain import (
    AmountStats,
    DecidePayment,
    Dimension,
    Features,
    PayerHistory,
    PaymentUpdate,
    WindowStats,
    dimension_value,
)
from paymesh.risk.features import windows_by_dimension
from paymesh.risk.ports import FeatureQuery

__all__ = ["DEDUPE_TTL_S", "HISTORY_TTL_S", "RedisFeatureStore"]

DEDUPE_TTL_S = 7 * 24 * 3600
HISTORY_TTL_S = 400 * 24 * 3600
_US = 1_000_000

# KEYS: 1 event mark, 2 payment key, 3 payer key, 4.. dimension keys.
# ARGV: 1 mode (record|drop|succeed), 2 member, 3 at_us, 4 retention ms,
#       5 dedupe ms (0 = no event), 6 trim floor (µs), 7 currency, 8 amount,
#       9 country, 10 event time (µs), 11 history ms.
_APPLY = """
if ARGV[5] ~= '0' then
  if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[5]) then return 0 end
end
local mode = ARGV[1]
if mode == 'drop' then
  local m = redis.call('GET', KEYS[2])
  if m then
    for i = 4, #KEYS do redis.call('ZREM', KEYS[i], m) end
    redis.call('DEL', KEYS[2])
  end
  return 1
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[4]) then
  for i = 4, #KEYS do
    redis.call('ZADD', KEYS[i], ARGV[3], ARGV[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[6])
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
  end
end
if mode == 'succeed' then
  local p = KEYS[3]
  local first = tonumber(redis.call('HGET', p, 'first') or '')
  if first == nil or tonumber(ARGV[10]) < first then redis.call('HSET', p, 'first', ARGV[10]) end
  redis.call('HINCRBY', p, 'count', 1)
  if ARGV[9] ~= '' then redis.call('HINCRBY', p, 'c:' .. ARGV[9], 1) end
  local cur = ARGV[7]
  local x = tonumber(ARGV[8])
  local n = tonumber(redis.call('HGET', p, 'n:' .. cur) or '0') + 1
  local mean = tonumber(redis.call('HGET', p, 'mean:' .. cur) or '0')
  local m2 = tonumber(redis.call('HGET', p, 'm2:' .. cur) or '0')
  local delta = x - mean
  mean = mean + delta / n
  m2 = m2 + delta * (x - mean)
  redis.call('HSET', p, 'n:' .. cur, n, 'mean:' .. cur, string.format('%.17g', mean),
             'm2:' .. cur, string.format('%.17g', m2))
  redis.call('PEXPIRE', p, ARGV[11])
end
return 1
"""

# KEYS: 1..n one per window (a dimension key), n+1 the payer key, n+2 the payment
#       key, n+3.. the dimension keys to record the payment into.
# ARGV: 1 excluded payment id, 2 currency, 3 read payer (1/0), 4 n, 5 record (1/0),
#       6 member, 7 at_us, 8 retention ms, 9 trim floor (µs), 10.. window floors (µs).
# Counting and recording in one script makes check-and-add atomic: two
# replicas deciding for one payer at once cannot both see the window without
# the other's payment.
_READ = """
local out = {}
local ex = ARGV[1] .. '|'
local windows = tonumber(ARGV[4])
for i = 1, windows do
  local members = redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. ARGV[9 + i], '+inf')
  local count, sum = 0, 0
  for _, m in ipairs(members) do
    if string.sub(m, 1, #ex) ~= ex then
      count = count + 1
      local cur, amt = string.match(m, '|([^|]*)|([^|]*)$')
      if cur == ARGV[2] then sum = sum + tonumber(amt) end
    end
  end
  out[#out + 1] = count
  out[#out + 1] = sum
end
if ARGV[3] == '1' then
  out[#out + 1] = redis.call('HGETALL', KEYS[windows + 1])
else
  out[#out + 1] = {}
end
if ARGV[5] == '1' and redis.call('SET', KEYS[windows + 2], ARGV[6], 'NX', 'PX', ARGV[8]) then
  for i = windows + 3, #KEYS do
    redis.call('ZADD', KEYS[i], ARGV[7], ARGV[6])
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[9])
    redis.call('PEXPIRE', KEYS[i], ARGV[8])
  end
end
return out
"""


class RedisFeatureStore:
    """:class:`~paymesh.risk.features.FeatureStore` on Redis."""

    records_with_decisions = False
    # Reads record the payment at once (atomic check-and-add); a decline forgets it.
    records_with_reads = True
    reads_lists = False

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "paymesh:risk",
        retention_s: int,
        timeout_s: float = 2.0,
    ) -> None:
        # Bounded: a stuck connection must fail a decision, never hang it.
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self._prefix = prefix
        self._retention_s = retention_s
        self._apply = self._redis.register_script(_APPLY)
        self._read = self._redis.register_script(_READ)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    async def ping(self) -> None:
        """Raise unless Redis answers PING (readiness)."""
        await self._redis.ping()

    def _velocity_key(self, tenant_id: str, dimension: Dimension, value: str) -> str:
        return f"{self._prefix}:vel:{tenant_id}:{dimension.value}:{value}"

    def _payer_key(self, tenant_id: str, payer: str) -> str:
        return f"{self._prefix}:payer:{tenant_id}:{payer}"

    async def read(self, query: FeatureQuery) -> Features:
        payment, needs, now_us = query.payment, query.needs, query.now_us
        record = query.record
        keys: list[str] = []
        floors: list[int] = []
        order: list[tuple[Dimension, int]] = []
        for dimension, sizes in windows_by_dimension(needs).items():
            value = dimension_value(payment, dimension)
            if not value:
                continue
            for size in sizes:
                keys.append(self._velocity_key(payment.tenant_id, dimension, value))
                floors.append(now_us - size * _US)
                order.append((dimension, size))
        if not keys and not needs.payer and not record:
            return Features(now_us=now_us)
        keys += [
            self._payer_key(payment.tenant_id, payment.payer_account_id),
            f"{self._prefix}:pay:{payment.tenant_id}:{payment.payment_id}",
            *self._dimension_keys(payment),
        ]
        args: list[Any] = [
            payment.payment_id,
            payment.currency,
            "1" if needs.payer else "0",
            len(order),
            "1" if record else "0",
            _member(payment),
            now_us,
            self._retention_s * 1000,
            now_us - self._retention_s * _US,
            *floors,
        ]
        reply = await self._read(keys=keys, args=args)
        windows = {
            key: WindowStats(count=int(reply[2 * i]), amount=int(reply[2 * i + 1]))
            for i, key in enumerate(order)
        }
        history = _history(reply[-1], payment.currency) if needs.payer else None
        return Features(now_us=now_us, windows=windows, payer=history)

    def _dimension_keys(self, payment: DecidePayment) -> list[str]:
        return [
            self._velocity_key(payment.tenant_id, d, value)
            for d in Dimension
            if (value := dimension_value(payment, d))
        ]

    async def forget(self, payment: DecidePayment) -> None:
        """Take the payment out of its windows (it was declined after all)."""
        await self._run("drop", "", payment, 0)

    async def record(self, payment: DecidePayment, *, at_us: int) -> None:
        await self._run("record", "", payment, at_us)

    async def apply(self, event_id: str, update: PaymentUpdate, *, now_us: int) -> bool:
        mode = {"dropped": "drop", "moved": "record", "succeeded": "succeed"}[update.kind]
        return await self._run(mode, event_id, update.payment, update.at_us, update)

    async def prune(self, *, before_us: int) -> int:
        # Sorted sets are trimmed on every add and expire when idle.
        return 0

    async def _run(
        self,
        mode: str,
        event_id: str,
        payment: DecidePayment,
        at_us: int,
        update: PaymentUpdate | None = None,
    ) -> bool:
        tenant = payment.tenant_id
        dims = self._dimension_keys(payment)
        succeeded = update.succeeded if update is not None else None
        keys = [
            f"{self._prefix}:evt:{event_id}",
            f"{self._prefix}:pay:{tenant}:{payment.payment_id}",
            self._payer_key(tenant, payment.payer_account_id),
            *dims,
        ]
        retention_ms = self._retention_s * 1000
        args: list[Any] = [
            mode,
            _member(payment),
            at_us,
            retention_ms,
            DEDUPE_TTL_S * 1000 if event_id else 0,
            at_us - self._retention_s * _US,
            succeeded.currency if succeeded else payment.currency,
            succeeded.amount if succeeded else payment.amount,
            succeeded.country if succeeded else "",
            succeeded.at_us if succeeded else at_us,
            HISTORY_TTL_S * 1000,
        ]
        return bool(await self._apply(keys=keys, args=args))


def _member(payment: DecidePayment) -> str:
    return f"{payment.payment_id}|{payment.currency}|{payment.amount}"


def _history(flat: list[str], currency: str) -> PayerHistory | None:
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    if "count" not in fields:
        return None
    countries = {k[2:]: int(v) for k, v in fields.items() if k.startswith("c:")}
    usual = min(countries, key=lambda c: (-countries[c], c)) if countries else ""
    amounts = None
    if f"n:{currency}" in fields:
        amounts = AmountStats(
            count=int(fields[f"n:{currency}"]),
            mean=float(fields[f"mean:{currency}"]),
            m2=float(fields[f"m2:{currency}"]),
        )
    return PayerHistory(
        first_seen_us=int(fields.get("first", 0)),
        succeeded_count=int(fields["count"]),
        usual_country=usual,
        amounts=amounts,
    )
