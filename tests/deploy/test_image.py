"""The image, built and run for real: a Debian bookworm base made with debootstrap
(cached under a tag), the paymesh image built on it with podman, every service a
container on the host network against the machine's PostgreSQL, Redis and a tansu
broker, and one payment driven through the gateway container.

Needs root (CI is): podman, buildah, runc and debootstrap are installed with apt
when missing, never skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from deploy_helpers import DEPLOY, REPO

from tests.apt import ensure_packages
from tests.conftest import PG_ADMIN, free_port

BASE_IMAGE = "localhost/paymesh-test-base:bookworm"
PODMAN = ("podman", "--runtime", "runc")
# crun fails on this machine's cgroups, and podman's default ulimits are refused here.
ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")
SERVICES = ("accounts", "risk", "payments", "webhooks", "gateway")  # start order
MAX_IMAGE_MB = 400

# One worker runs the whole module: its image (one tag per source) is built once, and no
# other worker removes it while a test runs it.
pytestmark = [pytest.mark.timeout(1800), pytest.mark.xdist_group("image")]


def sh(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (bounded); fail with its output unless it succeeded."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout[-4000:]}"
            f"\n{result.stderr[-4000:]}"
        )
    return result


def podman(
    *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return sh(*PODMAN, *args, timeout=timeout, check=check)


def ensure_tools() -> None:
    """podman, buildah, runc and debootstrap from Debian, installed when missing."""
    ensure_packages({t: t for t in ("podman", "buildah", "runc", "debootstrap")})


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 .sources or sources.list)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1)
                for line in stanza.splitlines()
                if ":" in line and not line.startswith("#")
            )
            uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
            if uris and "bookworm" in suites:
                return uris[0]
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        for line in path.read_text().splitlines() if path.exists() else []:
            words = line.split()
            if words[:1] == ["deb"] and "bookworm" in words:
                return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def ensure_base_image() -> None:
    """A minimal bookworm with python3 and venv, imported once and kept under its tag."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return
    root = Path(tempfile.mkdtemp(prefix="paymesh-base-", dir="/var/tmp"))
    try:
        sh(
            "debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
            "bookworm", str(root / "rootfs"), debian_mirror(), timeout=1200,
        )  # fmt: skip
        rootfs = root / "rootfs"
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                     "usr/share/man", "usr/share/locale", "usr/share/info"):  # fmt: skip
            for child in (rootfs / junk).glob("*"):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        tarball = root / "rootfs.tar"
        sh("tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), ".")
        podman("import", "--change", 'CMD ["python3"]', str(tarball), BASE_IMAGE)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def host_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts (a TLS-inspecting proxy's CA may be in it)."""
    candidates = [os.environ.get(v) for v in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")]
    got = sh("python3", "-m", "pip", "config", "get", "global.cert", check=False).stdout.strip()
    candidates += [got, "/etc/ssl/certs/ca-certificates.crt"]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def host_index_url() -> str | None:
    """The package index this machine's pip uses, if not the default."""
    url = (
        os.environ.get("PIP_INDEX_URL")
        or sh(
            "python3", "-m", "pip", "config", "get", "global.index-url", check=False
        ).stdout.strip()
    )
    return url if url.startswith(("http://", "https://")) else None


def build_image(tag: str, workdir: Path) -> None:
    """The paymesh image on the local base. pip's settings reach the build as a secret
    and the CA bundle as a read-only volume, so neither ends up in a layer."""
    pip_conf = ["[global]"]
    volumes: list[str] = []
    if (ca := host_ca_bundle()) is not None:
        volumes += ["--volume", f"{ca}:/run/host-ca/ca-bundle.crt:ro"]
        pip_conf.append("cert = /run/host-ca/ca-bundle.crt")
    if (index := host_index_url()) is not None:
        pip_conf.append(f"index-url = {index}")
    secret = workdir / "pip.conf"
    secret.write_text("\n".join(pip_conf) + "\n")
    secret.chmod(0o600)
    podman(
        "build", "--format", "docker", "--layers=false", "--network", "host", *ULIMITS,
        "-f", str(DEPLOY / "Dockerfile"), "--ignorefile", str(DEPLOY / "Dockerfile.dockerignore"),
        "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--secret", f"id=pip.conf,src={secret}",
        *volumes, "-t", tag, str(REPO), timeout=1200,
    )  # fmt: skip


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The paymesh image, built for this run and removed after it."""
    started = time.monotonic()
    ensure_tools()
    ensure_base_image()
    base_ready = time.monotonic()
    tag = f"localhost/paymesh-test:{uuid.uuid4().hex[:12]}"
    before = set(podman("images", "--all", "--quiet", "--no-trunc").stdout.split())
    try:
        build_image(tag, tmp_path_factory.mktemp("image"))
        print(
            f"\nbase image ready in {base_ready - started:.0f}s, paymesh image built in "
            f"{time.monotonic() - base_ready:.0f}s"
        )
        yield tag
    finally:
        podman("rmi", "--force", tag, check=False)
        # Whatever else the build left (a stage's image), not the cached base.
        after = set(podman("images", "--all", "--quiet", "--no-trunc").stdout.split())
        for leftover in after - before:
            podman("rmi", "--force", leftover, check=False)


def test_image_is_small_non_root_with_a_healthcheck_and_no_tests(image: str) -> None:
    (info,) = json.loads(podman("image", "inspect", image).stdout)
    config = info["Config"]
    size_mb = info["Size"] / 1e6
    print(f"\nimage size: {size_mb:.0f} MB")
    assert size_mb < MAX_IMAGE_MB
    assert config["User"] == "10001:10001"
    assert config["Cmd"] == ["paymesh", "serve", "accounts"]
    # podman reports the HEALTHCHECK beside Config (docker format images only).
    healthcheck = info.get("HealthCheck") or info.get("Healthcheck") or config["Healthcheck"]
    assert healthcheck["Test"] == ["CMD", "paymesh", "health"]
    assert "PAYMESH_VAR_DIR=/var/lib/paymesh" in config["Env"]
    # Nothing of the work tree but the package: no tests, no venv, no sources.
    found = podman(
        "run", "--rm", "--network", "none", *ULIMITS, "--health-interval", "disable",
        "--user", "0", "--read-only", image, "find", "/",
        "-xdev", "(", "-name", ".venv", "-o", "-name", "test_image.py", "-o", "-name",
        "deploy_helpers.py", "-o", "-path", "/src", "-o", "-name", ".git", ")", "-print",
    ).stdout  # fmt: skip
    assert found.strip() == ""
    whoami = podman(
        "run", "--rm", "--network", "none", *ULIMITS, "--health-interval", "disable",
        image, "id", "-u",
    ).stdout  # fmt: skip
    assert whoami.strip() == "10001"


class Containers:
    """paymesh containers of one test; every one is removed at the end."""

    def __init__(self, image: str, env: dict[str, str]) -> None:
        self.image = image
        self.env = env
        self.prefix = f"paymesh-test-{secrets.token_hex(4)}"
        self.names: list[str] = []

    def _args(self) -> list[str]:
        # As locked down as the Helm chart: read-only root, writable tmpfs only,
        # no capabilities, no privilege escalation.
        args = [
            "--network", "host", *ULIMITS, "--read-only", "--tmpfs", "/tmp",
            "--tmpfs", "/var/lib/paymesh", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
        ]  # fmt: skip
        for key, value in self.env.items():
            args += ["--env", f"{key}={value}"]
        return args

    def run_once(self, *command: str) -> str:
        """A one-shot container (migration, bootstrap); its stdout."""
        return podman("run", "--rm", *self._args(), self.image, *command, timeout=300).stdout

    def start(self, service: str) -> str:
        name = f"{self.prefix}-{service}"
        self.names.append(name)
        # The image's own CMD form picks the service; its HEALTHCHECK is run
        # on demand below (no systemd timer here).
        podman(
            "run", "--detach", "--name", name, "--health-interval", "disable", *self._args(),
            self.image, "paymesh", "serve", service,
        )  # fmt: skip
        return name

    def wait_healthy(self, name: str, timeout_s: float = 120) -> None:
        """Until the image's HEALTHCHECK (`paymesh health`) passes (bounded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            check = podman("healthcheck", "run", name, check=False, timeout=60)
            if check.returncode == 0:
                return
            state = podman("inspect", "--format", "{{.State.Status}}", name, check=False)
            if state.stdout.strip() != "running" or time.monotonic() > deadline:
                raise AssertionError(
                    f"{name} not healthy ({state.stdout.strip()}): {check.stdout}{check.stderr}"
                    f"\n{self.logs(name)}"
                )
            time.sleep(1)

    def logs(self, name: str) -> str:
        result = podman("logs", "--tail", "60", name, check=False)
        return result.stdout[-6000:] + result.stderr[-6000:]

    def remove_all(self) -> None:
        for name in reversed(self.names):
            podman("rm", "--force", "--time", "10", name, check=False, timeout=120)


async def _each_database(statement: str, names: list[str]) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        for name in names:
            await conn.execute(statement.format(db=name))
    finally:
        await conn.close()


def test_services_in_containers_move_money_through_the_gateway(
    image: str, kafka_bootstrap: str
) -> None:
    databases = {s: f"paymesh_image_{s}_{secrets.token_hex(5)}" for s in SERVICES}
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    ports = {s: free_port() for s in SERVICES}
    admin_ports = {s: free_port() for s in SERVICES}  # one host network: no two on 9100
    env = {
        # Production mode: refuses the default secret, so the real one must arrive.
        "PAYMESH_ENVIRONMENT": "production",
        "PAYMESH_GATEWAY__SECRET_KEY": secrets.token_urlsafe(32),
        "PAYMESH_WEBHOOKS__SECRET_KEY": secrets.token_urlsafe(32),
        "PAYMESH_LOG_LEVEL": "WARNING",
        "PAYMESH_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "PAYMESH_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "PAYMESH_RISK__REDIS_URL": "redis://127.0.0.1:6379/0",  # velocity counters
        "PAYMESH_GATEWAY__REDIS_URL": "redis://127.0.0.1:6379/0",  # rate-limit buckets
        "PAYMESH_GATEWAY__HOST": "127.0.0.1",
        "PAYMESH_GATEWAY__PORT": str(ports["gateway"]),
    }
    for service in SERVICES:
        prefix = f"PAYMESH_{service.upper()}__"
        env[prefix + "DATABASE_URL"] = f"{base}/{databases[service]}"
        env[prefix + "ADMIN_LISTEN"] = f"127.0.0.1:{admin_ports[service]}"
        if service != "gateway":
            env[prefix + "LISTEN"] = env[prefix + "TARGET"] = f"127.0.0.1:{ports[service]}"
    asyncio.run(_each_database('CREATE DATABASE "{db}"', list(databases.values())))
    containers = Containers(image, env)
    try:
        containers.run_once("paymesh", "migrate")
        for service in SERVICES:
            containers.wait_healthy(containers.start(service))
        creds = json.loads(
            containers.run_once(
                "sh", "-c", "paymesh bootstrap --credentials /tmp/c.json >&2 && cat /tmp/c.json"
            )
        )
        pay_once(f"http://127.0.0.1:{ports['gateway']}", creds)
        for service in SERVICES:  # each container's own admin listener
            admin = f"http://127.0.0.1:{admin_ports[service]}"
            assert httpx.get(f"{admin}/readyz", timeout=10).status_code == 200, service
            scrape = httpx.get(f"{admin}/metrics", timeout=10).text
            assert f'paymesh_ready{{service="{service}"}} 1.0' in scrape, service
    finally:
        containers.remove_all()
        asyncio.run(
            _each_database('DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', list(databases.values()))
        )


def pay_once(url: str, creds: dict[str, str]) -> None:
    """Token, two accounts, a top-up and an automatically captured payment."""
    with httpx.Client(base_url=url, timeout=30) as http:
        token = http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
            },
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = http.post(
                path, json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())}
            )
            assert r.status_code == 201, f"POST {path}: {r.status_code} {r.text}"
            answer: dict[str, Any] = r.json()
            return answer

        payer = post("/v1/accounts", {"currency": "USD", "type": "customer"})["id"]
        payee = post("/v1/accounts", {"currency": "USD", "type": "merchant"})["id"]
        topup = post("/v1/topups", {"account_id": payer, "amount": 10_000, "currency": "USD"})
        assert topup["status"] == "succeeded", topup
        payment = post(
            "/v1/payments",
            {"payer_account_id": payer, "payee_account_id": payee, "amount": 2_500,
             "currency": "USD", "capture_method": "automatic"},
        )  # fmt: skip
        for _ in range(100):
            if payment["status"] != "processing":
                break
            time.sleep(0.2)
            payment = http.get(f"/v1/payments/{payment['id']}", headers=headers).json()
        assert payment["status"] == "succeeded", payment
        balance = http.get(f"/v1/accounts/{payer}", headers=headers).json()["balance"]
        assert balance["available"] == 7_500, balance
