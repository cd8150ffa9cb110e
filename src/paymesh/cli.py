"""The ``paymesh`` command: ``up``, ``serve``, ``migrate``, ``bootstrap``, ``demo``,
``health``, ``top``, ``ledger verify``, ``keys``, ``audit tail``, ``tenants create``, ``clients``,
``kafka replay-dlq``.

Help texts are Markdown (``rich_markup_mode``): a docstring's lines are joined
into paragraphs, and `code` shows without its backticks.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import uvloop
from rich.console import Console

from paymesh.launcher import SERVICES, Platform, credentials_path
from paymesh.platform.logging import configure_logging
from paymesh.settings import Settings, load_settings


def _group(help: str) -> typer.Typer:
    # A crash shows its traceback without the frames' locals: they may hold secrets.
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        rich_markup_mode="markdown",
        pretty_exceptions_show_locals=False,
    )


app = _group("paymesh: an open-source payment platform.")


def _subcommands(name: str, help: str) -> typer.Typer:
    """A group of subcommands, ``paymesh <name> ...``."""
    group = _group(help)
    app.add_typer(group, name=name)
    return group


ledger = _subcommands("ledger", "Audit the accounts ledger.")
keys = _subcommands("keys", "The gateway's token signing keys.")
audit = _subcommands("audit", "The gateway's append-only audit log.")
tenants = _subcommands("tenants", "Tenants (in the gateway database).")
clients = _subcommands("clients", "Tenants' API clients (in the gateway database).")
users = _subcommands("users", "The operator console's users (in the gateway database).")
risk = _subcommands("risk", "The risk service's rules.")
kafka = _subcommands("kafka", "The distributed shape's Kafka topics.")
recon = _subcommands("recon", "Reconciliation: bank statements matched to the ledger.")
bank = _subcommands("bank", "The simulated bank of the demo and the tests.")
console = Console(stderr=True, soft_wrap=True)
# What `paymesh up` tells the person who started it goes to stdout: stderr is the
# log, one JSON object per line.
banner = Console(soft_wrap=True)

__all__ = ["app", "main"]

# The console's admin on the demo platform (var/demo-credentials.json has its password).
DEMO_CONSOLE_EMAIL = "admin@paymesh.localhost"


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def _run_platform(settings: Settings, main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived platform coroutine on the event loop the settings choose."""
    if settings.event_loop == "uvloop":
        uvloop.run(main)
    else:
        asyncio.run(main)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def write_credentials(path: Path, creds: dict[str, str]) -> None:
    """Write the demo credentials readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f, indent=2)
    path.chmod(0o600)


async def bootstrap(platform: Platform) -> dict[str, str]:
    """Create the demo tenant, the operator and the console's demo admin on first start;
    return their credentials."""
    from paymesh.gateway.console.service import create_demo_admin
    from paymesh.gateway.operator import console_deps
    from paymesh.gateway.ports import Deps
    from paymesh.gateway.service import bootstrap_demo
    from paymesh.platform.clock import SystemClock

    path = credentials_path(platform.settings)
    store = platform.runtime("gateway").store
    created = await bootstrap_demo(deps=Deps(store=store, clock=SystemClock()))
    creds: dict[str, str] = {}
    if created is not None:
        creds = created.as_dict()
    elif path.exists():
        creds = json.loads(path.read_text())
    if creds and "console_email" not in creds:
        async with console_deps(platform.settings, store) as deps:
            password = await create_demo_admin(DEMO_CONSOLE_EMAIL, deps=deps)
        if password is not None:
            creds = {**creds, "console_email": DEMO_CONSOLE_EMAIL, "console_password": password}
    if creds:
        write_credentials(path, creds)
    return creds


async def _up(settings: Settings) -> None:
    platform = Platform(settings)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    await platform.start()
    try:
        creds = await bootstrap(platform)
        scheme = "https" if settings.gateway.tls_cert_file else "http"
        url = f"{scheme}://{settings.gateway.host}:{platform.runtime('gateway').port}"
        say = banner.print
        say(f"[bold green]paymesh is up[/]: {url}  (API docs: {url}/docs, {url}/redoc)")
        for name in SERVICES[:-1]:
            say(f"  {name:9} gRPC 127.0.0.1:{platform.runtime(name).port}")
        for server in platform.admin:
            host = server.listen.rpartition(":")[0]
            say(
                f"  admin     http://{host}:{server.port}/metrics (/healthz, /readyz)"
                f" of {', '.join(server.services)}"
            )
        if creds:
            # Client ids only: the secrets stay in the file (mode 0600), out of any log.
            say(f"  demo client:     {creds['client_id']}")
            say(f"  operator client: {creds['operator_client_id']}")
            say(f"  their secrets: {credentials_path(settings)} (try `paymesh demo`)")
        else:
            say(f"  [yellow]{credentials_path(settings)} is missing[/]")
        if creds.get("console_email"):
            say(
                f"  console: {url}/console  (sign in as {creds['console_email']}; the password"
                " is console_password in that file)"
            )
        say("Ctrl-C stops it. Logs: stderr, one JSON object per line.")
        await stop.wait()
    finally:
        await platform.stop()


@app.command()
def up() -> None:
    """Start the embedded platform: every service, SQLite under var/, the gateway on :8000."""
    settings = _settings()
    _run_platform(settings, _up(settings))


@app.command()
def serve(service: Annotated[str, typer.Argument(help=", ".join(SERVICES))]) -> None:
    """Run one service as its own process (the distributed shape)."""
    if service not in SERVICES:
        raise typer.BadParameter(f"one of {', '.join(SERVICES)}")
    settings = _settings()

    async def _serve() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await Platform(settings, services=(service,)).serve_forever(stop)

    _run_platform(settings, _serve())


@app.command()
def migrate(
    service: Annotated[str, typer.Argument(help="a service, or 'all'")] = "all",
) -> None:
    """Bring the service databases to their newest schema."""
    settings = _settings()
    services = SERVICES if service == "all" else (service,)
    asyncio.run(Platform(settings, services=services).migrate())
    console.print(f"migrated: {', '.join(services)}")


@app.command("bootstrap")
def bootstrap_command(
    credentials: Annotated[
        Path | None, typer.Option(help="where to write the demo credentials (mode 0600)")
    ] = None,
) -> None:
    """Migrate the gateway database and create the demo tenant and the operator.

    The first-run step of the distributed shape (`paymesh up` does it by itself).
    """
    from paymesh.gateway.operator import bootstrap as bootstrap_gateway

    settings = _settings()
    path = credentials or credentials_path(settings)
    created = asyncio.run(bootstrap_gateway(settings))
    creds = None if created is None else created.as_dict()
    if creds is None:
        where = f"in {path}" if path.exists() else f"not in {path}: the first run wrote them"
        console.print(f"the demo tenant and operator exist already; their credentials are {where}")
        return
    write_credentials(path, creds)
    console.print(f"[bold green]bootstrapped[/]: demo tenant and operator; credentials in {path}")


@app.command()
def demo(
    url: Annotated[str, typer.Option(help="the gateway")] = "http://127.0.0.1:8000",
    credentials: Annotated[Path | None, typer.Option(help="demo-credentials.json")] = None,
) -> None:
    """Run a scripted scenario against a running platform and print each step."""
    from paymesh.demo import DemoError, run_demo

    path = credentials or credentials_path(load_settings())
    if not path.exists():
        raise typer.BadParameter(f"{path} not found: start the platform with `paymesh up` first")
    try:
        result: dict[str, Any] = run_demo(url, path, say=console.print)
    except DemoError as exc:
        console.print(f"[red]demo failed[/]: {exc}")
        raise typer.Exit(1) from exc
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach {url}[/]: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"[green]demo finished[/]: {len(result['payments'])} payments")


def _served_service() -> str | None:
    """The service that this container's PID 1 (``paymesh serve <service>``) runs."""
    try:
        words = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for i, word in enumerate(words[:-1]):
        if word == "serve":
            return words[i + 1]
    return None


def _readyz_status(name: str, listen: str, timeout: float) -> str:
    """SERVING when the admin listener's /readyz answers 200, else what went wrong."""
    from paymesh.platform.admin import split_listen

    host, port = split_listen(listen)
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - every interface includes loopback
        host = "127.0.0.1" if host != "::" else "::1"
    address = f"[{host}]" if ":" in host else host
    try:
        response = httpx.get(f"http://{address}:{port}/readyz", timeout=timeout)
    except httpx.HTTPError as exc:
        return f"UNREACHABLE ({type(exc).__name__})"
    if response.status_code == 200:
        return "SERVING"
    try:
        failed = response.json()["services"][name]["failed"]
        why = "; ".join(f"{check}: {reason}" for check, reason in failed.items())
    except (ValueError, KeyError, TypeError, AttributeError):
        why = f"HTTP {response.status_code}"
    return f"NOT_SERVING ({why})"


def _health_status(name: str, settings: Settings, timeout: float) -> str:
    """SERVING, or what the service on 127.0.0.1 answered instead: its admin /readyz,
    or without an admin listener (or on an ephemeral port) gRPC health / the JWKS."""
    listen: str = getattr(settings, name).admin_listen
    if listen and not listen.endswith(":0"):
        return _readyz_status(name, listen, timeout)
    if name == "gateway":
        https = bool(settings.gateway.tls_cert_file)
        scheme = "https" if https else "http"
        url = f"{scheme}://127.0.0.1:{settings.gateway.port}/.well-known/jwks.json"
        # HTTPS is verified against the services' CA when one is configured.
        verify: ssl.SSLContext | bool = True
        if settings.tls.ca_file:
            verify = ssl.create_default_context(cafile=settings.tls.ca_file)
        try:
            response = httpx.get(url, timeout=timeout, verify=verify)
        except httpx.HTTPError as exc:
            return f"UNREACHABLE ({type(exc).__name__})"
        return "SERVING" if response.status_code == 200 else f"HTTP {response.status_code}"
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = getattr(settings, name).listen.rsplit(":", 1)[-1]
    target = f"127.0.0.1:{port}"
    if settings.tls.enabled:
        from paymesh.platform.rpc import channel_credentials

        channel = grpc.secure_channel(target, channel_credentials(settings.tls))
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


@app.command()
def health(
    service: Annotated[
        str | None,
        typer.Argument(help="a service; default: the one that paymesh serve runs as PID 1"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for an answer")] = 3.0,
) -> None:
    """Exit 0 when the service on this machine is ready: its admin listener's `/readyz`
    answers 200 (database, Kafka, Redis checked), or, when `admin_listen` is empty,
    its gRPC health says SERVING (the gateway: its JWKS answers).

    The container image's HEALTHCHECK.
    """
    name = service or _served_service()
    if name not in SERVICES:
        raise typer.BadParameter(f"one of {', '.join(SERVICES)}")
    # Settings() without the production check: a probe needs no secret.
    status = _health_status(name, Settings(), timeout)
    typer.echo(f"{name}: {status}")
    if status != "SERVING":
        raise typer.Exit(1)


@app.command()
def top(
    url: Annotated[
        list[str] | None,
        typer.Option("--url", help="a /metrics URL (repeatable: one per process)"),
    ] = None,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between scrapes")] = 2.0,
    once: Annotated[
        bool, typer.Option(help="print one view (two scrapes --interval apart) and exit")
    ] = False,
) -> None:
    """A live view of the running platform from its metrics: per service requests/s,
    p50/p99, errors/s, payments/s by status, sagas open, outbox rows waiting and
    consumer lag, between successive scrapes."""
    import time

    from rich.console import Console as RichConsole
    from rich.live import Live

    from paymesh import top as view

    urls = url or [view.DEFAULT_URL]
    out = RichConsole(soft_wrap=False)
    with httpx.Client(timeout=max(interval, 2.0)) as client:
        before = view.scrape(client, urls)
        if len(before.failed) == len(urls):
            typer.echo("\n".join(f"unreachable: {f}" for f in before.failed), err=True)
            raise typer.Exit(1)
        if once:
            time.sleep(interval)
            out.print(view.render(view.view(before, view.scrape(client, urls)), urls))
            return
        with Live(console=out, auto_refresh=False, transient=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    after = view.scrape(client, urls)
                    live.update(view.render(view.view(before, after), urls), refresh=True)
                    before = after
            except KeyboardInterrupt:
                pass


@app.command()
def certs(
    directory: Annotated[Path, typer.Option("--dir", help="where to write them")] = Path(
        "var/certs"
    ),
    services: Annotated[
        str, typer.Option(help="comma-separated services to issue certificates for")
    ] = ",".join(SERVICES),
    hosts: Annotated[
        list[str] | None, typer.Option("--hosts", help="extra DNS names or IPs (repeatable)")
    ] = None,
    force: Annotated[bool, typer.Option(help="replace an existing CA")] = False,
) -> None:
    """Make a development CA and a server+client certificate per service (mutual TLS)."""
    from paymesh.certs import make_certs

    names = [name.strip() for name in services.split(",") if name.strip()]
    extra = [h.strip() for value in hosts or [] for h in value.split(",") if h.strip()]
    issued = make_certs(directory, names, hosts=extra, force=force)
    state = "created" if issued.ca_created else "kept"
    console.print(f"CA {state}: {issued.ca_file}")
    for name, (cert, key) in issued.certs.items():
        console.print(f"  {name:9} {cert}  {key}")


@risk.command("check-rules")
def risk_check_rules(
    path: Annotated[Path, typer.Argument(help="a rules file, e.g. deploy/risk-rules.yaml")],
) -> None:
    """Validate a rules file as the risk service would load it (exit 1 with the reason).

    Run it on a ConfigMap's rules before applying them: a running service keeps
    its last good rules when a reload is invalid, so a mistake would otherwise
    only show as a log line.
    """
    from paymesh.risk.errors import RulesInvalid
    from paymesh.risk.rules import read_rules

    try:
        rules = read_rules(str(path))
    except RulesInvalid as exc:
        typer.echo(f"invalid: {path}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"ok: {path}: version {rules.version}, {len(rules.rules)} rules, checksum {rules.checksum}"
    )


@kafka.command("replay-dlq")
def kafka_replay_dlq(
    topic: Annotated[
        str, typer.Argument(help="the topic, as services name it (paymesh.payments.v1)")
    ],
    limit: Annotated[
        int | None, typer.Option(min=1, help="replay at most this many records")
    ] = None,
    idle: Annotated[
        float, typer.Option(min=0.1, help="stop after this many seconds without a record")
    ] = 5.0,
) -> None:
    """Re-publish the records of TOPIC.dlq to TOPIC, with their original key and headers.

    Both names get the kafka.namespace prefix, as the services' topics do. What
    was replayed is remembered (consumer group paymesh-dlq-replay), so a second
    run goes on after it. Consumers are idempotent, so a replay is safe.
    """
    from paymesh.launcher import make_kafka_bus
    from paymesh.platform.delivery import dead_letter_topic

    settings = _settings()
    if not settings.kafka.bootstrap_servers:
        typer.echo(
            "no Kafka configured (kafka.bootstrap_servers); the embedded shape keeps dead "
            f"letters in {settings.var_dir / 'dead-letters.jsonl'} (see docs/kafka-dlq.md)",
            err=True,
        )
        raise typer.Exit(2)

    async def _replay() -> int:
        bus = make_kafka_bus(settings)
        await bus.start()
        try:
            return await bus.replay_dead_letters(topic, limit=limit, idle_s=idle)
        finally:
            await bus.stop()

    ns = settings.kafka.namespace
    physical = f"{ns}.{topic}" if ns else topic
    try:
        count = asyncio.run(_replay())
    except Exception as exc:
        typer.echo(f"replay failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"replayed {count} records from {dead_letter_topic(physical)} to {physical}")


@ledger.command("verify")
def ledger_verify(
    database_url: Annotated[
        str | None,
        typer.Option(help="the accounts database (default: settings.accounts.database_url)"),
    ] = None,
) -> None:
    """Check balances against transfers, debits against credits, and the batch hash chain."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from paymesh.accounts.audit import Audit, verify
    from paymesh.platform.db import Database

    url = database_url or _settings().accounts.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        console.print(f"[red]no accounts database at {parsed.database}[/]")
        raise typer.Exit(2)

    async def _verify() -> Audit:
        db = Database(url, service="accounts")
        try:
            return await verify(db)
        finally:
            await db.dispose()

    try:
        audit = asyncio.run(_verify())
    except DBAPIError as exc:
        console.print(f"[red]cannot read the ledger[/] (migrated? `paymesh migrate`): {exc.orig}")
        raise typer.Exit(2) from exc
    # Plain lines (typer.echo, not rich): one problem per line, never wrapped.
    for problem in audit.problems:
        typer.echo(str(problem))
    if not audit.ok:
        typer.echo(f"ledger verify FAILED: {len(audit.problems)} problems; {audit.summary()}")
        raise typer.Exit(1)
    typer.echo(f"ledger ok: {audit.summary()}")


def _iso(at_us: int | None) -> str:
    import datetime as dt

    if at_us is None:
        return "-"
    return dt.datetime.fromtimestamp(at_us / 1e6, tz=dt.UTC).isoformat(timespec="seconds")


def _gateway_call(coro: Any) -> Any:
    """Run an operator task; a refusal (unknown tenant, name taken, ...) exits 1."""
    from paymesh.gateway.errors import GatewayError

    try:
        return asyncio.run(coro)
    except GatewayError as exc:
        console.print(f"[red]{exc.code}[/]: {exc.detail}")
        raise typer.Exit(1) from exc


@keys.command("rotate")
def keys_rotate() -> None:
    """Make a new signing key the active one.

    The previous one keeps verifying its tokens until they expire; running
    gateways switch within 30 s.
    """
    from paymesh.gateway.operator import rotate_key

    key, retired = _gateway_call(rotate_key(_settings()))
    typer.echo(f"active: {key.kid}")
    for kid in retired:
        typer.echo(f"retired: {kid}")


@keys.command("list")
def keys_list() -> None:
    """Every signing key: kid, status, created, retired, verifies until."""
    from paymesh.gateway.operator import list_keys

    for k in _gateway_call(list_keys(_settings())):
        typer.echo(
            f"{k.kid}  {k.status:8} created={_iso(k.created_at_us)} "
            f"retired={_iso(k.retired_at_us)} verifies_until={_iso(k.verifies_until_us)}"
        )


@audit.command("tail")
def audit_tail(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="how many entries")] = 20,
) -> None:
    """The most recent audit entries, oldest of them first."""
    from paymesh.gateway.operator import recent_audit

    for e in reversed(_gateway_call(recent_audit(_settings(), limit=limit))):
        typer.echo(
            f"{_iso(e.at_us)} {e.outcome:7} {e.action:14} actor={e.actor} "
            f"tenant={e.tenant_id or '-'} target={e.target or '-'} source={e.source} "
            f"{json.dumps(e.details, sort_keys=True)}"
        )


@tenants.command("create")
def tenants_create(name: Annotated[str, typer.Argument(help="a unique name")]) -> None:
    """Create a tenant (without fees: an operator sets fees through POST /v1/tenants)."""
    from paymesh.gateway.operator import add_tenant

    tenant = _gateway_call(add_tenant(_settings(), name))
    typer.echo(json.dumps({"id": tenant.id, "name": tenant.name}))


@clients.command("create")
def clients_create(
    tenant_id: Annotated[str, typer.Argument(help="the tenant")],
    scope: Annotated[list[str], typer.Option("--scope", help="a scope (repeatable)")],
) -> None:
    """Create an API client; prints its client_id and secret (shown this once)."""
    from paymesh.gateway.operator import add_client

    client, secret = _gateway_call(add_client(_settings(), tenant_id, frozenset(scope)))
    typer.echo(
        json.dumps(
            {
                "client_id": client.client_id,
                "client_secret": secret,
                "tenant_id": client.tenant_id,
                "scopes": sorted(client.scopes),
            }
        )
    )
    console.print("[yellow]the secret is shown only this once: store it now[/]")


@clients.command("revoke")
def clients_revoke(
    tenant_id: Annotated[str, typer.Argument(help="the tenant")],
    client_id: Annotated[str, typer.Argument(help="the client")],
) -> None:
    """Revoke an API client: no new tokens, and its tokens stop working."""
    from paymesh.gateway.operator import revoke_client

    _gateway_call(revoke_client(_settings(), tenant_id, client_id))
    typer.echo(f"revoked: {client_id}")


@users.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="the user's e-mail address")],
    role: Annotated[str, typer.Option("--role", help="viewer, support, risk or admin")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="the tenant it sees (none: every tenant)")
    ] = None,
) -> None:
    """Create a console user; prints a one-time password, to change at first sign-in."""
    from paymesh.gateway.operator import add_user

    user, password = _gateway_call(add_user(_settings(), email, role, tenant))
    typer.echo(
        json.dumps(
            {
                "id": user.id,
                "email": user.email,
                "role": user.role.value,
                "tenant_id": user.tenant_id,
                "one_time_password": password,
            }
        )
    )
    console.print("[yellow]the one-time password is shown only this once[/]")


@users.command("list")
def users_list() -> None:
    """Every console user, one JSON object per line."""
    from paymesh.gateway.operator import list_users

    for u in _gateway_call(list_users(_settings())):
        typer.echo(
            json.dumps(
                {
                    "id": u.id,
                    "email": u.email,
                    "role": u.role.value,
                    "tenant_id": u.tenant_id,
                    "disabled": u.disabled,
                    "must_change_password": u.must_change_password,
                    "created": _iso(u.created_at_us),
                }
            )
        )


@users.command("disable")
def users_disable(email: Annotated[str, typer.Argument(help="the user's e-mail address")]) -> None:
    """Disable a console user: it cannot sign in, and its sessions end at once."""
    from paymesh.gateway.operator import set_user_disabled

    _gateway_call(set_user_disabled(_settings(), email, True))
    typer.echo(f"disabled: {email}")


@users.command("enable")
def users_enable(email: Annotated[str, typer.Argument(help="the user's e-mail address")]) -> None:
    """Enable a disabled console user again."""
    from paymesh.gateway.operator import set_user_disabled

    _gateway_call(set_user_disabled(_settings(), email, False))
    typer.echo(f"enabled: {email}")


@users.command("reset-password")
def users_reset_password(
    email: Annotated[str, typer.Argument(help="the user's e-mail address")],
) -> None:
    """A new one-time password for a console user (unlocked; its sessions end)."""
    from paymesh.gateway.operator import reset_user_password

    password = _gateway_call(reset_user_password(_settings(), email))
    typer.echo(json.dumps({"email": email, "one_time_password": password}))
    console.print("[yellow]the one-time password is shown only this once[/]")


@users.command("reset-totp")
def users_reset_totp(
    email: Annotated[str, typer.Argument(help="the user's e-mail address")],
) -> None:
    """Remove a console user's second factor (a lost authenticator); its sessions end."""
    from paymesh.gateway.operator import reset_user_totp

    _gateway_call(reset_user_totp(_settings(), email))
    typer.echo(f"second factor removed: {email}")


def _payments_call(method: str, request: Any, tenant: str) -> Any:
    """Call the payments service's `method` as an operator acting for `tenant`; a refusal
    exits 1 with its code."""
    import getpass

    import grpc

    from paymesh.contracts.payments.v1.payments_pb2_grpc import PaymentsStub
    from paymesh.platform.identity import Caller
    from paymesh.platform.rpc import caller_options, error_code, open_channel

    settings = _settings()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    caller = Caller(tenant, f"cli:{user}", frozenset({"settlement:read", "settlement:write"}))

    async def call() -> Any:
        channel = open_channel(settings.peer("payments").target, settings.tls)
        try:
            stub: Any = PaymentsStub(channel)
            return await getattr(stub, method)(request, **caller_options(caller, 60.0))
        finally:
            await channel.close()

    try:
        return asyncio.run(call())
    except grpc.aio.AioRpcError as exc:
        code = error_code(exc) or exc.code().name.lower()
        console.print(f"[red]{code}[/]: {exc.details()}")
        raise typer.Exit(1) from exc


@app.command()
def settle(
    tenant: Annotated[str, typer.Option(help="the tenant whose merchants are settled")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code, e.g. EUR")],
    cutoff: Annotated[
        str | None,
        typer.Option(help="RFC 3339 time with its offset (default: now)"),
    ] = None,
) -> None:
    """Run a settlement of one currency up to a cutoff (docs/settlement.md); print its
    lines. The same cutoff again answers the same run."""
    import datetime as dt

    from paymesh.contracts.payments.v1 import payments_pb2 as ppb

    try:
        moment = dt.datetime.fromisoformat(cutoff) if cutoff else dt.datetime.now(tz=dt.UTC)
    except ValueError:
        console.print(f"[red]invalid cutoff[/]: {cutoff!r} is not an RFC 3339 time")
        raise typer.Exit(2) from None
    if moment.tzinfo is None:
        console.print("[red]invalid cutoff[/]: give its offset, e.g. 2026-12-06T00:00:00Z")
        raise typer.Exit(2)
    cutoff_us = int(moment.timestamp() * 1_000_000)
    request = ppb.CreateSettlementRunRequest(currency=currency.upper(), cutoff_us=cutoff_us)
    run = _payments_call("CreateSettlementRun", request, tenant)
    typer.echo(
        f"settlement run {run.id}: {run.status}, {len(run.lines)} lines, "
        f"payout batch {run.payout_batch_id or '-'}"
    )
    for line in run.lines:
        typer.echo(
            f"{line.account_id}\tgross {line.gross}\trefunds {line.refunds}\tfees {line.fees}"
            f"\tcarried {line.carried_in}\tnet {line.net}\t{line.status}"
            f"\t{line.payout_id or '-'}"
        )


@recon.command("import")
def recon_import(
    file: Annotated[Path, typer.Argument(help="a camt.053 (.xml) or CSV statement")],
    tenant: Annotated[str, typer.Option(help="the tenant whose bank account it is")],
    format: Annotated[
        str | None, typer.Option(help="camt.053 or csv (default: by the file's extension)")
    ] = None,
) -> None:
    """Import a bank statement and reconcile it; print its counts per result."""
    from paymesh.contracts.payments.v1 import payments_pb2 as ppb

    fmt = format or ("csv" if file.suffix.lower() == ".csv" else "camt.053")
    try:
        content = file.read_bytes()
    except OSError as exc:
        console.print(f"[red]cannot read {file}[/]: {exc.strerror}")
        raise typer.Exit(2) from exc
    request = ppb.ImportBankStatementRequest(content=content, format=fmt)
    found = _payments_call("ImportBankStatement", request, tenant)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(found.counts.items())) or "no lines"
    typer.echo(f"bank statement {found.id} ({found.statement_id}): {counts}")


@bank.command("execute")
def bank_execute(
    file: Annotated[Path, typer.Argument(help="a pain.001 credit-transfer file")],
    out: Annotated[Path, typer.Option(help="where to write the camt.053 statement")],
    statement_id: Annotated[
        str | None, typer.Option(help="the statement's id (default: from the file)")
    ] = None,
    returns: Annotated[
        list[str] | None,
        typer.Option(
            "--return", help="END_TO_END_ID=REASON: the bank returns this transfer (repeatable)"
        ),
    ] = None,
) -> None:
    """Be the bank: execute a pain.001 and write the camt.053 statement of the day, with
    the transfers named by --return returned (e.g. --return po_123=AC04)."""
    import datetime as dt

    from paymesh.payments.bankfiles import BankFileError, camt053, execute_pain001

    asked: dict[str, str] = {}
    for item in returns or []:
        e2e, sep, reason = item.partition("=")
        if not sep or not e2e or not reason:
            console.print(f"[red]invalid --return[/]: {item!r} (END_TO_END_ID=REASON)")
            raise typer.Exit(2)
        asked[e2e] = reason
    now = dt.datetime.now(tz=dt.UTC)
    try:
        data = file.read_bytes()
        # ISO's Max35Text: the file's own message id (a batch id) is longer; a time is not.
        sid = statement_id or f"SIM-{now:%Y%m%d%H%M%S%f}"
        statement = execute_pain001(data, statement_id=sid, booked_on=now.date(), returns=asked)
        out.write_bytes(camt053(statement, created_at=now))
    except (OSError, BankFileError) as exc:
        console.print(f"[red]cannot execute {file}[/]: {exc}")
        raise typer.Exit(2) from exc
    typer.echo(f"statement {sid}: {len(statement.entries)} entries written to {out}")


def main() -> None:
    """Entry point of the ``paymesh`` console script."""
    app()
