"""The rules file: YAML read with PyYAML, validated with pydantic, turned into the
domain's :class:`~paymesh.risk.domain.RuleSet`; and :class:`RulesHolder`, which
keeps the rules in force and reloads them when the file changes.

The format is documented in ``docs/risk.md``. A file that does not parse or
validate is refused as a whole (:class:`~paymesh.risk.errors.RulesInvalid`).

Reloading polls the file's content checksum every ``rules_reload_interval_s``
instead of watching it with inotify: Kubernetes updates a mounted ConfigMap by
swapping a ``..data`` symlink to a new directory, which inotify watchers on the
old file never see (and a file that is replaced rather than written is missed
too); reading a small file once a second is cheap and always right.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from paymesh.platform.clock import Clock
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Periodic
from paymesh.platform.money import MAX_AMOUNT, is_valid_currency
from paymesh.risk.domain import (
    DEFAULT_SCORES,
    Action,
    AmountLimit,
    AmountZScore,
    Condition,
    CountryMismatch,
    Dimension,
    ListField,
    ListMatch,
    NewAccount,
    Rule,
    RuleSet,
    Thresholds,
    Velocity,
)
from paymesh.risk.errors import RulesInvalid

__all__ = ["LoadedRules", "RulesHolder", "parse_rules", "read_rules"]

log = get_logger(__name__)

SETTINGS_SOURCE = "settings"
_MAX_WINDOW_S = 31 * 24 * 3600

Amount = Annotated[int, Field(gt=0, le=MAX_AMOUNT)]
RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


def _currencies(amounts: dict[str, int]) -> dict[str, int]:
    unknown = sorted(c for c in amounts if not is_valid_currency(c))
    if unknown:
        raise ValueError(f"unknown currencies {unknown}")
    return amounts


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RuleId
    description: str = ""
    action: Action
    reason: Code
    score: Annotated[int, Field(ge=0, le=100)] | None = None
    tenants: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _allow_only_for_lists(self) -> _Rule:
        if self.action is Action.ALLOW and getattr(self, "kind", "") != "list":
            raise ValueError("action allow is only for list rules")
        return self

    def condition(self) -> Condition:
        raise NotImplementedError


class _AmountLimit(_Rule):
    kind: Literal["amount_limit"]
    max_amount: dict[str, Amount] = Field(default_factory=dict)
    default_max_amount: Amount | None = None

    @model_validator(mode="after")
    def _check(self) -> _AmountLimit:
        _currencies(self.max_amount)
        if not self.max_amount and self.default_max_amount is None:
            raise ValueError("set max_amount, default_max_amount or both")
        return self

    def condition(self) -> Condition:
        return AmountLimit(tuple(sorted(self.max_amount.items())), self.default_max_amount)


class _Velocity(_Rule):
    kind: Literal["velocity"]
    dimension: Dimension
    window_s: Annotated[int, Field(gt=0, le=_MAX_WINDOW_S)]
    max_count: Annotated[int, Field(ge=1)] | None = None
    max_sum: dict[str, Amount] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> _Velocity:
        _currencies(self.max_sum)
        if self.max_count is None and not self.max_sum:
            raise ValueError("set max_count, max_sum or both")
        return self

    def condition(self) -> Condition:
        return Velocity(
            self.dimension, self.window_s, self.max_count, tuple(sorted(self.max_sum.items()))
        )


class _List(_Rule):
    kind: Literal["list"]
    field: ListField
    list: Code

    def condition(self) -> Condition:
        return ListMatch(self.field, self.list)


class _NewAccount(_Rule):
    kind: Literal["new_account"]
    max_amount: dict[str, Annotated[int, Field(ge=0, le=MAX_AMOUNT)]]
    max_age_s: Annotated[int, Field(gt=0)] | None = None
    min_payments: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _check(self) -> _NewAccount:
        _currencies(self.max_amount)
        if not self.max_amount:
            raise ValueError("max_amount needs at least one currency")
        return self

    def condition(self) -> Condition:
        return NewAccount(tuple(sorted(self.max_amount.items())), self.max_age_s, self.min_payments)


class _CountryMismatch(_Rule):
    kind: Literal["country_mismatch"]

    def condition(self) -> Condition:
        return CountryMismatch()


class _AmountZScore(_Rule):
    kind: Literal["amount_zscore"]
    z: Annotated[float, Field(gt=0, le=100)]
    min_history: Annotated[int, Field(ge=2)] = 5

    def condition(self) -> Condition:
        return AmountZScore(self.z, self.min_history)


_AnyRule = Annotated[
    _AmountLimit | _Velocity | _List | _NewAccount | _CountryMismatch | _AmountZScore,
    Field(discriminator="kind"),
]


class _Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    review_at: Annotated[int, Field(ge=0, le=100)] | None = None
    decline_at: Annotated[int, Field(ge=0, le=100)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> _Thresholds:
        if (
            self.review_at is not None
            and self.decline_at is not None
            and self.review_at >= self.decline_at
        ):
            raise ValueError("review_at must be below decline_at")
        return self


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, Field(min_length=1, max_length=64)]
    thresholds: _Thresholds = Field(default_factory=_Thresholds)
    rules: list[_AnyRule]

    @model_validator(mode="after")
    def _unique_ids(self) -> _RulesFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return self


def _describe(exc: ValidationError) -> str:
    """One line: where and what, never the offending input itself."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What and where, without quoting the file (a snippet could hold anything)."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def parse_rules(content: bytes) -> RuleSet:
    """The rule set a rules file's `content` declares (raises RulesInvalid)."""
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise RulesInvalid(f"not valid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(data, dict):
        raise RulesInvalid("the rules file must hold a mapping with version and rules")
    try:
        parsed = _RulesFile.model_validate(data)
    except ValidationError as exc:
        raise RulesInvalid(_describe(exc)) from exc
    rules = tuple(
        Rule(
            id=r.id,
            condition=r.condition(),
            action=r.action,
            reason_code=r.reason,
            score=DEFAULT_SCORES[r.action] if r.score is None else r.score,
            description=r.description,
            tenants=frozenset(r.tenants),
        )
        for r in parsed.rules
    )
    thresholds = Thresholds(parsed.thresholds.review_at, parsed.thresholds.decline_at)
    return RuleSet(
        rules=rules,
        thresholds=thresholds,
        label=parsed.version,
        content_checksum=hashlib.sha256(content).hexdigest(),
    )


def read_rules(path: str) -> RuleSet:
    """The rule set in the file at `path` (raises RulesInvalid)."""
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise RulesInvalid(f"cannot read {path}: {exc.strerror or exc}") from exc
    return parse_rules(content)


@dataclass(frozen=True)
class LoadedRules:
    """The rules in force, where they came from, and the last rejected reload."""

    rules: RuleSet
    source: str
    loaded_at_us: int
    last_error: str = ""
    last_error_at_us: int = 0


class RulesHolder:
    """The rules in force; with a file, reloaded when its content changes.

    A changed file that validates replaces the rules for the next decision; one
    that does not is logged once (``risk_rules_rejected``) and the last good
    rules stay. At start a missing or invalid file is an error: :meth:`load`
    raises RulesInvalid and the service refuses to start.
    """

    def __init__(
        self, path: str, *, fallback: RuleSet, clock: Clock, interval_s: float = 1.0
    ) -> None:
        self._path = path
        self._clock = clock
        self._rejected = ""  # checksum of the last rejected content: logged once
        # A surprise in a check is logged (risk_rules_check_failed) and polling goes on.
        self._reloader = Periodic("risk-rules-check", self._check, interval_s=interval_s)
        self.loaded = LoadedRules(fallback, SETTINGS_SOURCE, clock.now_us())

    @property
    def rules(self) -> RuleSet:
        """The rules in force now."""
        return self.loaded.rules

    def load(self) -> None:
        """Load the file at start (raises RulesInvalid); nothing to do without one."""
        if self._path:
            self.loaded = LoadedRules(read_rules(self._path), self._path, self._clock.now_us())

    def check(self) -> bool:
        """Reload the file if its content changed; True when new rules took effect."""
        if not self._path:
            return False
        try:
            content = Path(self._path).read_bytes()
        except OSError as exc:
            return self._reject(f"cannot read {self._path}: {exc.strerror or exc}", "")
        checksum = hashlib.sha256(content).hexdigest()
        if checksum == self.loaded.rules.checksum:
            if self.loaded.last_error:  # the good content is back
                self.loaded = replace(self.loaded, last_error="", last_error_at_us=0)
                self._rejected = ""
            return False
        if checksum == self._rejected:
            return False
        try:
            rules = parse_rules(content)
        except RulesInvalid as exc:
            return self._reject(str(exc), checksum)
        self._rejected = ""
        self.loaded = LoadedRules(rules, self._path, self._clock.now_us())
        log.info(
            "risk_rules_loaded", path=self._path, version=rules.version, checksum=rules.checksum
        )
        return True

    def _reject(self, error: str, checksum: str) -> bool:
        if checksum and checksum == self._rejected:
            return False
        if not checksum and self.loaded.last_error == error:
            return False
        self._rejected = checksum
        self.loaded = replace(self.loaded, last_error=error, last_error_at_us=self._clock.now_us())
        log.warning(
            "risk_rules_rejected",
            path=self._path,
            error=error,
            active_version=self.loaded.rules.version,
        )
        return False

    async def _check(self) -> None:
        self.check()

    def start(self) -> None:
        """Poll in the background (only with a file)."""
        if self._path:
            self._reloader.start()

    async def stop(self) -> None:
        """Stop polling."""
        await self._reloader.stop()
