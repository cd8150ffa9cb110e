"""Strings the services can store: valid Unicode, without NUL characters.

JSON may carry a lone surrogate (``"\\udc00"`` is valid JSON but no Unicode
text): protobuf refuses to encode it, so it used to end as a 500. JSON and
percent-encoded URLs may carry NUL (``\\u0000``, ``%00``): PostgreSQL text
columns refuse it. Both are refused at the edge as a 422 naming the field:

- request bodies and form fields declare their strings as :data:`Text`
  (or a type built on it), whose validator is :func:`storable`;
- path and query parameters pass :func:`check_params` (every authorised
  route runs it, see :func:`paymesh.gateway.deps.authorize`).

Headers need no check here: ASGI decodes them as Latin-1 (no surrogate can
appear), HTTP forbids NUL in them, and the one a route reads as text, the
``Idempotency-Key``, only admits printable ASCII.
"""

from __future__ import annotations

from typing import Annotated

from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, StrictStr
from pydantic_core import PydanticCustomError
from starlette.requests import Request

__all__ = ["INVALID_TEXT", "Text", "check_params", "is_storable", "storable"]

INVALID_TEXT = "invalid_text"
_MESSAGE = "must be valid Unicode text without NUL (U+0000) characters or lone surrogates"


def is_storable(value: str) -> bool:
    """True when `value` encodes as UTF-8 (no lone surrogate) and holds no NUL."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable(value: str) -> str:
    """`value` unchanged, or a validation error (type ``invalid_text``) if not storable."""
    if not is_storable(value):
        raise PydanticCustomError(INVALID_TEXT, _MESSAGE)
    return value


# Every string of a request body or form: a strict str the services can store.
Text = Annotated[StrictStr, AfterValidator(storable)]


def check_params(request: Request) -> None:
    """Refuse (422 validation_error, one error per field) path or query strings not storable."""
    errors = [
        {"loc": (where, name), "msg": _MESSAGE, "type": INVALID_TEXT}
        for where, params in (
            ("path", request.path_params.items()),
            ("query", request.query_params.multi_items()),
        )
        for name, value in params
        if isinstance(value, str) and not (is_storable(value) and is_storable(name))
    ]
    if errors:
        raise RequestValidationError(errors)
