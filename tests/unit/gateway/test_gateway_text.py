"""Storable text: what the gateway lets through to the services as a string."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from paymesh.gateway import features, schemas
from paymesh.gateway.features.accounts.schemas import CreateAccountIn
from paymesh.gateway.text import is_storable, storable


@pytest.mark.parametrize(
    "value", ["", "plain", "tab\tand\nnewline", "é 中文 😀", "\ufffd", "\U0010fffd"]
)
def test_any_unicode_text_without_nul_is_storable(value: str) -> None:
    assert is_storable(value)
    assert storable(value) == value


@pytest.mark.parametrize("value", ["\x00", "a\x00b", "\udc00", "x\ud800", "\ud83d\ude00"])
def test_nul_and_surrogate_code_points_are_not_storable(value: str) -> None:
    # "\ud83d\ude00" is an escaped pair in JSON, but Python keeps it as two lone surrogates.
    assert not is_storable(value)


def _request_models() -> list[type[BaseModel]]:
    found = []
    modules = [schemas] + [
        importlib.import_module(f"{features.__name__}.{f.name}.schemas")
        for f in pkgutil.iter_modules(features.__path__)
    ]
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, BaseModel)
                and cls.__module__ == module.__name__
                and cls.model_config.get("extra") == "forbid"
                and cls.__name__ != "_In"
            ):
                found.append(cls)
    return found


def _has_storable(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("type") == "function-after" and node["function"]["function"] is storable:
            return True
        return any(_has_storable(v) for v in node.values())
    return isinstance(node, list) and any(_has_storable(v) for v in node)


def _unchecked_strings(node: Any, path: str = "", *, guarded: bool = False) -> Iterator[str]:
    """Paths of every `str` core schema that the `storable` validator does not guard.

    A str is guarded inside a `storable` function-after, or inside a chain (a pattern
    constraint after the validators) one of whose steps runs `storable`.
    """
    if isinstance(node, dict):
        if node.get("type") == "str" and not guarded:
            yield path
        if node.get("type") == "function-after" and node["function"]["function"] is storable:
            guarded = True
        if node.get("type") == "chain" and _has_storable(node["steps"]):
            guarded = True
        for key, value in node.items():
            yield from _unchecked_strings(value, f"{path}.{key}", guarded=guarded)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _unchecked_strings(value, f"{path}[{i}]", guarded=guarded)


def test_every_string_of_every_request_body_is_checked_as_storable_text() -> None:
    models = _request_models()
    assert {"CreateAccountIn", "CreatePaymentIn", "ListEntryIn", "CreateWebhookEndpointIn"} <= {
        m.__name__ for m in models
    }
    for model in models:
        unchecked = list(_unchecked_strings(model.__pydantic_core_schema__))
        assert not unchecked, f"{model.__name__}: plain str at {unchecked}"


def test_a_metadata_key_or_value_with_a_lone_surrogate_is_a_validation_error() -> None:
    for metadata in ({"k": "\udc00"}, {"\udc00": "v"}, {"k": "a\x00"}):
        with pytest.raises(ValidationError) as caught:
            CreateAccountIn.model_validate(
                {"currency": "USD", "type": "customer", "metadata": metadata}
            )
        assert caught.value.errors()[0]["loc"][0] == "metadata"
