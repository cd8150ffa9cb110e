"""Structured logs: one JSON object per line on stderr, secrets redacted first.

Every line goes through the standard library's root logger and one handler
whose formatter is structlog's ``ProcessorFormatter``: paymesh's structlog
loggers and every library that logs through :mod:`logging` (uvicorn, grpc,
alembic, httpx, asyncio, librdkafka through :data:`KAFKA_LOGGER`) render the
same way, with ``timestamp``, ``level``, ``logger`` and ``event``, plus:

- ``request_id`` while a request is handled (:func:`bind_request_id`: the
  gateway's middleware and the services' gRPC interceptor bind it);
- ``trace_id`` and ``span_id`` while an OpenTelemetry span is active;
- ``[redacted]`` in place of any value that is, or looks like, a secret
  (:func:`redact`), at any depth of the event's fields.

gRPC's C core writes to stderr by itself, in plain text: ``paymesh/__init__.py``
makes it silent by default (``GRPC_VERBOSITY=NONE``) so that stderr stays JSON.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import Any, TextIO

import structlog
from structlog.stdlib import ProcessorFormatter

try:  # the API only: without an SDK every span is invalid and costs a lookup
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - opentelemetry-api is a dependency
    _otel_trace = None  # type: ignore[assignment]

__all__ = [
    "KAFKA_LOGGER",
    "REDACTED",
    "add_request_id",
    "add_trace_ids",
    "bind_request_id",
    "configure_logging",
    "current_request_id",
    "get_logger",
    "json_formatter",
    "redact",
    "reset_request_id",
    "valid_request_id",
]

REDACTED = "[redacted]"

# librdkafka's own log lines (confluent-kafka's `logger` option), through logging.
KAFKA_LOGGER = logging.getLogger("librdkafka")

# Library loggers that say, at INFO, nothing an operator acts on (alembic: which
# plugins it set up and which migrations ran, on every start; httpx: every request,
# with its URL) or that paymesh replaces (uvicorn's access log: see the gateway's).
_QUIET = ("alembic", "httpx", "httpcore", "uvicorn.access")

_HANDLER_NAME = "paymesh"

# --- request ids --------------------------------------------------------------------

_REQUEST_ID: ContextVar[str | None] = ContextVar("paymesh_request_id", default=None)
# An id a client or peer sends is kept when it is 1-128 visible ASCII characters.
_VALID_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


def valid_request_id(value: str | bytes | None) -> str | None:
    """`value` as a request id if it is one we keep (1-128 visible ASCII), else None."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if value is None or _VALID_REQUEST_ID.fullmatch(value) is None:
        return None
    if _redact_text(value) is not value:  # a client's token sent as its request id
        return None
    return value


def bind_request_id(request_id: str | None) -> Token[str | None]:
    """Make `request_id` part of every log line of the current context (task)."""
    return _REQUEST_ID.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    """Undo :func:`bind_request_id`."""
    _REQUEST_ID.reset(token)


def current_request_id() -> str | None:
    """The request id bound in this context, if any."""
    return _REQUEST_ID.get()


def add_request_id(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Processor: the bound request id, as ``request_id``."""
    request_id = _REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def add_trace_ids(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Processor: ``trace_id`` and ``span_id`` of the active OpenTelemetry span, if any."""
    if _otel_trace is None:  # pragma: no cover - opentelemetry-api is a dependency
        return event_dict
    context = _otel_trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


# --- redaction ----------------------------------------------------------------------

_SECRET_KEY = re.compile(
    r"secret|password|passphrase|token|authorization|cookie|private|api_key",
    re.IGNORECASE,
)
# Fields whose names match _SECRET_KEY but that hold no secret.
_NOT_SECRET_KEYS = frozenset({"event", "token_ttl_s", "previous_secret_expires"})

# Values that are secrets whatever their field is called, and the text kept of them.
_SECRET_VALUES: tuple[tuple[re.Pattern[str], str], ...] = (
    # An Authorization header's credentials.
    (re.compile(r"\b(Bearer|Basic)\s+[^\s\"',;]+", re.IGNORECASE), rf"\1 {REDACTED}"),
    # A JWT (three base64url parts; the header of ours always starts with {").
    (re.compile(r"\beyJ[\w-]*\.[\w-]*\.[\w-]*"), REDACTED),
    # paymesh's API client secrets and webhook signing secrets.
    (re.compile(r"\b(sk|whsec)_[\w-]{16,}"), REDACTED),
    # A secret in a query string or form: client_secret=..., access_token=..., password=...
    (
        re.compile(
            r"\b([\w-]*(?:secret|password|token|api_key|signature)[\w-]*=)[^\s&\"',;]+",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}",
    ),
    # A secret in a JSON text: "client_secret": "...".
    (
        re.compile(
            r"(\"[\w-]*(?:secret|password|token|api_key)[\w-]*\"\s*:\s*)\"[^\"]*\"",
            re.IGNORECASE,
        ),
        rf'\1"{REDACTED}"',
    ),
)
# A cheap first look: a string without any of these holds none of the secrets above
# (most strings; a search for literals is several times faster than the patterns).
_MAYBE_SECRET = re.compile(r"eyJ|sk_|whsec_|=|\"\s*:|(?i:bearer|basic)\s")


def _redact_text(text: str) -> str:
    if _MAYBE_SECRET.search(text) is None:
        return text
    for pattern, replacement in _SECRET_VALUES:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any, depth: int = 0) -> Any:
    """`value` without secrets; containers are copied only when something changed."""
    if isinstance(value, str):
        return _redact_text(value)
    if depth > 16:  # a cycle, or absurd nesting: nothing of it is worth the risk
        return REDACTED if isinstance(value, Mapping | list | tuple | set) else value
    if isinstance(value, Mapping):
        out: dict[Any, Any] | None = None
        for key, item in value.items():
            new = _redact_item(key, item, depth + 1)
            if new is not item:
                if out is None:
                    out = dict(value)
                out[key] = new
        return value if out is None else out
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact_value(item, depth + 1) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items
    if isinstance(value, bytes):
        return _redact_value(value.decode("utf-8", "replace"), depth)
    return value


def _redact_item(key: Any, value: Any, depth: int) -> Any:
    if (
        isinstance(key, str)
        and key not in _NOT_SECRET_KEYS
        and _SECRET_KEY.search(key)
        and value is not None
    ):
        return REDACTED
    return _redact_value(value, depth)


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Processor: replace every value that is a secret, at any depth of the event.

    A value is a secret when its field's name says so (``client_secret``,
    ``authorization``, ``password``, ...), or when it looks like one whatever
    its name (``Bearer ...``, a JWT, ``sk_...``, ``whsec_...``,
    ``client_secret=...`` inside a text). Only strings and containers are
    looked at; a string is searched once and copied only when it holds one.
    """
    for key, value in event_dict.items():
        if key == "logger":  # its name; ProcessorFormatter's own fields are gone by now
            continue
        new = _redact_item(key, value, 0)
        if new is not value:
            event_dict[key] = new
    return event_dict


# --- configuration ------------------------------------------------------------------

_LEAD = ("timestamp", "level", "logger", "event")


def _lead_fields(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Processor: timestamp, level, logger and event first, for a reader's eye."""
    lead = {key: event_dict.pop(key) for key in _LEAD if key in event_dict}
    lead.update(event_dict)
    return lead


def _processors(*, json: bool) -> list[Any]:
    """What ProcessorFormatter runs on every line, structlog's or a library's."""
    return [
        structlog.stdlib.add_logger_name,  # from the LogRecord: before it is removed
        ProcessorFormatter.remove_processors_meta,
        structlog.contextvars.merge_contextvars,
        # Before redaction, so that a secret in an exception's text is redacted too.
        structlog.processors.format_exc_info,
        redact,
        # Fields made here hold no secret (a request id is checked when it is bound).
        add_request_id,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _lead_fields,
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(),
    ]


def json_formatter(*, json: bool = True) -> logging.Formatter:
    """The formatter of paymesh's log lines (structlog's and every library's)."""
    return ProcessorFormatter(processors=_processors(json=json), foreign_pre_chain=[])


class _StderrHandler(logging.StreamHandler[TextIO]):
    """A handler on whatever ``sys.stderr`` is when a line is written (a test runner or
    a CLI runner may swap it), never a stream closed since."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.set_name(_HANDLER_NAME)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """An exception that ended a thread, as a log line (not a bare traceback)."""
    if args.exc_type is SystemExit:
        return
    logging.getLogger("threading").error(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Send structlog and every stdlib logger to stderr, one JSON object per line.

    Calling it again replaces paymesh's handler (other handlers on the root
    logger, such as a test's, stay).
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    structlog.configure(
        processors=[ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setFormatter(json_formatter(json=json))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Nothing reads where a line was logged from, or which thread or process wrote
    # it: skip finding out (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    # Python's warnings and exceptions that end a thread become log lines too.
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception


def get_logger(name: str) -> Any:
    """A structlog logger bound to a module name."""
    return structlog.get_logger(name)
