"""The suite-wide check that no log line holds a secret or token the tests used.

:class:`SecretWatch` remembers every secret the tests come to hold (client
secrets, access tokens, webhook signing secrets: read from every HTTP
exchange of an httpx client, and from the demo credentials files the
platforms write), and collects the log lines of this process (a handler on
the root logger, formatted exactly as production formats them). At the end of
the session :func:`find_leaks` looks for each secret in those lines and in the
log files that subprocess platforms wrote under the session's temporary
folder. tests/conftest.py wires it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

from paymesh.platform.logging import json_formatter

# Response and request fields that carry a secret.
SECRET_FIELDS = frozenset(
    {"access_token", "client_secret", "operator_client_secret", "secret", "previous_secret"}
)
# Shorter strings are not searched for (a test's "sekrit" is a word, not a secret).
MIN_LENGTH = 16
# The alphabet of every secret paymesh makes (base64url, base64, JWT dots); a secret in
# a log line sits inside a run of these characters.
_RUN = re.compile(rf"[A-Za-z0-9_\-.~+/=]{{{MIN_LENGTH},}}")
_GRAM = 12


@dataclass(frozen=True)
class Leak:
    """A secret found in a log: where, and the line (with the secret masked)."""

    source: str
    line: str

    def __str__(self) -> str:
        return f"{self.source}: {self.line[:300]}"


def find_leaks(secrets: Iterable[str], texts: Iterable[tuple[str, str]]) -> list[Leak]:
    """Every line of `texts` ((source, text) pairs) that contains one of `secrets`.

    Linear in the size of the texts whatever the number of secrets: each run of
    the secrets' alphabet is looked at once, by its 12-character windows, against
    an index of the secrets' last 12 characters.
    """
    by_tail: dict[str, list[str]] = {}
    for secret in set(secrets):
        if len(secret) >= MIN_LENGTH:
            by_tail.setdefault(secret[-_GRAM:], []).append(secret)
    if not by_tail:
        return []
    leaks: list[Leak] = []
    for source, text in texts:
        hits: set[str] = set()
        checked: set[str] = set()
        for match in _RUN.finditer(text):
            run = match.group()
            if run in checked:
                continue
            checked.add(run)
            for i in range(len(run) - _GRAM + 1):
                for secret in by_tail.get(run[i : i + _GRAM], ()):
                    start = i + _GRAM - len(secret)
                    if start >= 0 and run.startswith(secret, start):
                        hits.add(secret)
        for secret in hits:
            for line in text.splitlines():
                if secret in line:
                    masked = line.replace(secret, f"<{secret[:4]}... ({len(secret)} chars)>")
                    leaks.append(Leak(source, masked))
                    break
    return leaks


def secrets_in(value: Any) -> Iterator[str]:
    """The values of the secret fields anywhere in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in SECRET_FIELDS and isinstance(item, str):
                yield item
            else:
                yield from secrets_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from secrets_in(item)


@dataclass
class SecretWatch:
    """What the suite's secrets are, and where its log lines went."""

    lines_file: Path
    secrets: set[str] = field(default_factory=set)
    _handler: logging.Handler | None = None
    _saved: dict[str, Any] = field(default_factory=dict)

    def remember(self, *values: str | None) -> None:
        """Take note of secrets the tests hold."""
        self.secrets.update(v for v in values if v)

    def observe(self, response: httpx.Response) -> None:
        """Note the secrets of one HTTP exchange: the request's credentials, the answer's."""
        request = response.request
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            self.remember(credentials.strip())
        elif scheme.lower() == "basic":
            self.remember(credentials.strip())
            with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
                self.remember(base64.b64decode(credentials).decode().partition(":")[2])
        with contextlib.suppress(httpx.RequestNotRead, UnicodeDecodeError):
            body = request.content
            if b"client_secret" in body:
                form = dict(parse_qsl(body.decode()))
                self.remember(form.get("client_secret"))
        with contextlib.suppress(httpx.ResponseNotRead, ValueError, UnicodeDecodeError):
            content = response.content
            if b"secret" in content or b"token" in content:
                self.remember(*secrets_in(json.loads(content)))

    def install(self) -> None:
        """Start watching: every httpx client's exchanges, every log line of this process."""
        watch = self
        sync_send = httpx.Client.send
        async_send = httpx.AsyncClient.send

        def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            response = sync_send(self, request, **kwargs)
            watch.observe(response)
            return response

        async def asend(
            self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
        ) -> httpx.Response:
            response = await async_send(self, request, **kwargs)
            watch.observe(response)
            return response

        self._saved = {"send": sync_send, "asend": async_send}
        httpx.Client.send = send  # type: ignore[method-assign]
        httpx.AsyncClient.send = asend  # type: ignore[method-assign]
        handler = logging.FileHandler(self.lines_file, encoding="utf-8")
        handler.setFormatter(json_formatter())
        logging.getLogger().addHandler(handler)
        self._handler = handler

    def uninstall(self) -> None:
        """Stop watching."""
        if self._saved:
            httpx.Client.send = self._saved["send"]  # type: ignore[method-assign]
            httpx.AsyncClient.send = self._saved["asend"]  # type: ignore[method-assign]
            self._saved = {}
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    def leaks(self, root: Path) -> list[Leak]:
        """The log lines, of this process and of every log file under `root`, with a secret."""
        for creds in root.rglob("demo-credentials.json"):
            with contextlib.suppress(OSError, ValueError):
                self.remember(*secrets_in(json.loads(creds.read_text())))

        def texts() -> Iterator[tuple[str, str]]:
            yield "this process", self.lines_file.read_text(errors="replace")
            for path in sorted(root.rglob("*.log")):
                if path.is_file():
                    yield str(path.relative_to(root)), path.read_text(errors="replace")

        return find_leaks(self.secrets, texts())
