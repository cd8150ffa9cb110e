"""The JSON form of every event payload: one codec per message, used both ways.

The payments objects (``payments.v1.Payment``, ``Refund``, ``Topup``,
``Payout``, ``Transfer``) have a public form: what the REST API returns for the
object, and exactly what an event about it carries as ``data``. It is declared
here once, as a table per message, with the REST API's field names (``created``,
not ``created_at_us``; an empty text is ``null``; times are RFC 3339 UTC;
``object`` names the kind). The gateway renders its responses with
:func:`to_json`, and the payments service renders its events' data with it, so
the two cannot drift.

Other payloads (risk's, accounts', webhooks') are messages whose proto field
names are their JSON names; they are rendered field by field (64-bit integers
stay JSON numbers: money never becomes a string).

:func:`from_json` reads a payload back into its message and is forgiving the
way a consumer must be (forward compatibility): unknown fields are ignored, and
so is a field of an older form (``created_at``); a missing field is the
message's default. A field of the wrong JSON type raises :class:`MalformedPayload`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from paymesh.contracts.payments.v1 import payments_pb2 as ppb

__all__ = ["MalformedPayload", "format_time", "from_json", "parse_time", "to_json"]

M = TypeVar("M", bound=Message)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MalformedPayload(ValueError):
    """An event's data that cannot be read as its declared message."""


def format_time(us: int) -> str:
    """RFC 3339 UTC time from Unix microseconds."""
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: str) -> int:
    """Unix microseconds from an RFC 3339 time (``…Z`` or with an offset)."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"time without a zone: {value!r}")
    return (moment - _EPOCH) // timedelta(microseconds=1)


# ---------------------------------------------------------------------------
# Field codecs: (dump from the message, load into the message).


@dataclass(frozen=True)
class _Field:
    """One JSON field of a public object, and how it maps to the message."""

    name: str
    dump: Callable[[Any], Any]
    load: Callable[[Any, Any], None]


def _same(name: str, proto: str | None = None, kind: type = str) -> _Field:
    attr = proto or name

    def load(msg: Any, value: Any) -> None:
        setattr(msg, attr, _check(name, value, kind))

    return _Field(name, lambda m: getattr(m, attr), load)


def _text_or_null(name: str, proto: str | None = None) -> _Field:
    attr = proto or name

    def load(msg: Any, value: Any) -> None:
        setattr(msg, attr, "" if value is None else _check(name, value, str))

    return _Field(name, lambda m: getattr(m, attr) or None, load)


def _time(name: str, proto: str) -> _Field:
    def load(msg: Any, value: Any) -> None:
        try:
            setattr(msg, proto, parse_time(_check(name, value, str)))
        except ValueError as exc:
            raise MalformedPayload(f"{name}: {exc}") from exc

    return _Field(name, lambda m: format_time(getattr(m, proto)), load)


def _constant(name: str, value: str) -> _Field:
    return _Field(name, lambda _m: value, lambda _m, _v: None)


def _metadata(name: str) -> _Field:
    def load(msg: Any, value: Any) -> None:
        items = _check(name, value, dict)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in items.items()):
            raise MalformedPayload(f"{name}: not an object of strings")
        getattr(msg, name).update(items)

    return _Field(name, lambda m: dict(getattr(m, name)), load)


def _strings(name: str) -> _Field:
    def load(msg: Any, value: Any) -> None:
        getattr(msg, name).extend(_check(name, v, str) for v in _check(name, value, list))

    return _Field(name, lambda m: list(getattr(m, name)), load)


def _check(name: str, value: Any, kind: type) -> Any:
    # bool is an int in Python; money never is.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedPayload(f"{name}: expected {kind.__name__}, got {type(value).__name__}")
    return value


_CAPTURE_METHODS = {
    ppb.CAPTURE_METHOD_AUTOMATIC: "automatic",
    ppb.CAPTURE_METHOD_MANUAL: "manual",
}
_CAPTURE_VALUES = {v: k for k, v in _CAPTURE_METHODS.items()}


def _capture_method() -> _Field:
    def load(msg: Any, value: Any) -> None:
        msg.capture_method = _CAPTURE_VALUES.get(_check("capture_method", value, str), 0)

    return _Field(
        "capture_method", lambda m: _CAPTURE_METHODS.get(m.capture_method, "automatic"), load
    )


def _nested(name: str, fields: tuple[_Field, ...], dump_if: Callable[[Any], bool]) -> _Field:
    """A sub-object, ``null`` when `dump_if` says the message holds none."""

    def dump(msg: Any) -> Any:
        return _dump(fields, getattr(msg, name)) if dump_if(msg) else None

    def load(msg: Any, value: Any) -> None:
        if value is not None:
            _load(fields, getattr(msg, name), _check(name, value, dict))

    return _Field(name, dump, load)


def _dump(fields: tuple[_Field, ...], msg: Any) -> dict[str, Any]:
    return {f.name: f.dump(msg) for f in fields}


def _load(fields: tuple[_Field, ...], msg: Any, data: Mapping[str, Any]) -> None:
    for f in fields:
        if f.name in data:
            f.load(msg, data[f.name])


def _risk_score() -> _Field:
    # No decision (risk was not asked): no score either.
    return _Field(
        "score",
        lambda r: r.score if r.decision else None,
        lambda r, v: setattr(r, "score", 0 if v is None else _check("score", v, int)),
    )


# ---------------------------------------------------------------------------
# The public objects of the payments service: the REST API's field names.

_PAYMENT_CONTEXT = (_text_or_null("ip"), _text_or_null("device_id"), _text_or_null("country"))
_RISK = (
    _text_or_null("decision"),
    _risk_score(),
    _strings("reasons"),
    _text_or_null("rules_version"),
)


def _movement(kind: str, *refs: str) -> tuple[_Field, ...]:
    """The fields of a money movement (a top-up, a payout, ...), in order; `refs` are
    the fields naming what it moves money between or reverses."""
    return (
        _same("id"),
        _constant("object", kind),
        *(_same(ref) for ref in refs),
        _same("status"),
        _same("amount", kind=int),
        _same("currency"),
        _text_or_null("failure_code"),
        _time("created", "created_at_us"),
    )


_PUBLIC: dict[type[Message], tuple[_Field, ...]] = {
    ppb.Payment: (
        _same("id"),
        _constant("object", "payment"),
        _same("status"),
        _same("amount", kind=int),
        _same("currency"),
        _same("amount_captured", kind=int),
        _same("amount_refunded", kind=int),
        _same("fee", kind=int),
        _capture_method(),
        _same("payer_account_id"),
        _same("payee_account_id"),
        _text_or_null("description"),
        _metadata("metadata"),
        _nested("context", _PAYMENT_CONTEXT, lambda m: m.HasField("context")),
        _nested("risk", _RISK, lambda m: m.HasField("risk")),
        _text_or_null("failure_code"),
        _text_or_null("failure_message"),
        _time("created", "created_at_us"),
        _time("updated", "updated_at_us"),
    ),
    ppb.Refund: (
        _same("id"),
        _constant("object", "refund"),
        _same("payment_id"),
        _same("status"),
        _same("amount", kind=int),
        _same("currency"),
        _text_or_null("reason"),
        _text_or_null("failure_code"),
        _time("created", "created_at_us"),
    ),
    ppb.Topup: _movement("topup", "account_id"),
    ppb.TopupReversal: _movement("topup_reversal", "topup_id", "account_id"),
    ppb.Payout: _movement("payout", "account_id"),
    ppb.PayoutReturn: (
        *_movement("payout_return", "payout_id", "account_id"),
        _text_or_null("reason"),
    ),
    ppb.Transfer: _movement("transfer", "from_account_id", "to_account_id"),
}


# ---------------------------------------------------------------------------
# Every other payload: proto field names are the JSON names.

_SCALARS: dict[int, type] = {
    FieldDescriptor.CPPTYPE_STRING: str,
    FieldDescriptor.CPPTYPE_INT32: int,
    FieldDescriptor.CPPTYPE_INT64: int,
    FieldDescriptor.CPPTYPE_UINT32: int,
    FieldDescriptor.CPPTYPE_UINT64: int,
    FieldDescriptor.CPPTYPE_BOOL: bool,
    FieldDescriptor.CPPTYPE_ENUM: int,
}


def _plain_dump(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in msg.DESCRIPTOR.fields:
        value = getattr(msg, f.name)
        if f.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            out[f.name] = [_plain_dump(v) for v in value] if _repeated(f) else _plain_dump(value)
        else:
            out[f.name] = list(value) if _repeated(f) else value
    return out


def _plain_load(msg: Message, data: Mapping[str, Any]) -> None:
    for f in msg.DESCRIPTOR.fields:
        if f.name not in data:
            continue
        value = data[f.name]
        target = getattr(msg, f.name)
        if f.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            if _repeated(f):
                for item in _check(f.name, value, list):
                    _plain_load(target.add(), _check(f.name, item, dict))
            else:
                _plain_load(target, _check(f.name, value, dict))
            continue
        kind = _SCALARS.get(f.cpp_type)
        if kind is None:
            raise MalformedPayload(f"{f.name}: a field type the contract does not use")
        if _repeated(f):
            target.extend(_check(f.name, v, kind) for v in _check(f.name, value, list))
        else:
            setattr(msg, f.name, _check(f.name, value, kind))


def _repeated(f: Any) -> bool:
    return bool(f.is_repeated)


# ---------------------------------------------------------------------------


def to_json(message: Message) -> dict[str, Any]:
    """The JSON form of `message`: the REST object for a public one, else its fields."""
    fields = _PUBLIC.get(type(message))
    return _dump(fields, message) if fields is not None else _plain_dump(message)


def from_json(cls: type[M], data: Any) -> M:
    """`data` read as a `cls`; unknown fields ignored, missing ones left at their default."""
    if not isinstance(data, Mapping):
        raise MalformedPayload(f"data is not an object but {type(data).__name__}")
    message = cls()
    fields = _PUBLIC.get(cls)
    try:
        if fields is not None:
            _load(fields, message, data)
        else:
            _plain_load(message, data)
    except (TypeError, ValueError) as exc:  # protobuf's own range and type checks
        if isinstance(exc, MalformedPayload):
            raise
        raise MalformedPayload(str(exc)) from exc
    return message
