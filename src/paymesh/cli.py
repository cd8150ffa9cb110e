"""The ``paymesh`` command: ``up``, ``serve``, ``migrate``, ``demo``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from paymesh.launcher import SERVICES, Platform, credentials_path
from paymesh.platform.logging import configure_logging
from paymesh.platform.settings import Settings, load_settings

app = typer.Typer(help="paymesh: an open-source payment platform.", no_args_is_help=True)
console = Console(stderr=True)

__all__ = ["app", "main"]


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


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
    """Create the demo tenant and operator on first start; return their credentials."""
    from paymesh.gateway.service import bootstrap_demo

    path = credentials_path(platform.settings)
    created = await bootstrap_demo(store=platform.runtime("gateway").store)
    if created is not None:
        creds = created.as_dict()
        write_credentials(path, creds)
        return creds
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    return {}


async def _up(settings: Settings) -> None:
    platform = Platform(settings)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    await platform.start()
    try:
        creds = await bootstrap(platform)
        url = f"http://{settings.gateway.host}:{platform.runtime('gateway').port}"
        console.print(f"[bold green]paymesh is up[/]: {url}  (API docs: {url}/docs)")
        for name in SERVICES[:-1]:
            console.print(f"  {name:9} gRPC 127.0.0.1:{platform.runtime(name).port}")
        if creds:
            console.print(f"  demo client:     {creds['client_id']} / {creds['client_secret']}")
            console.print(
                f"  operator client: {creds['operator_client_id']} / "
                f"{creds['operator_client_secret']}"
            )
            console.print(f"  (saved in {credentials_path(settings)}; try `paymesh demo`)")
        else:
            console.print(f"  [yellow]{credentials_path(settings)} is missing[/]")
        console.print("Ctrl-C stops it.")
        await stop.wait()
    finally:
        await platform.stop()


@app.command()
def up() -> None:
    """Start the embedded platform: every service, SQLite under var/, the gateway on :8000."""
    asyncio.run(_up(_settings()))


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

    asyncio.run(_serve())


@app.command()
def migrate(
    service: Annotated[str, typer.Argument(help="a service, or 'all'")] = "all",
) -> None:
    """Bring the service databases to their newest schema."""
    settings = _settings()
    services = SERVICES if service == "all" else (service,)
    asyncio.run(Platform(settings, services=services).migrate())
    console.print(f"migrated: {', '.join(services)}")


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


def main() -> None:
    """Entry point of the ``paymesh`` console script."""
    app()
