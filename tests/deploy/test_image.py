"""The image, built and run for real (tests/deploy/image_build.py): its SBOMs, every service a
container on the host network against the machine's PostgreSQL, Redis and a tansu
broker, and one payment driven through the gateway container.

Needs root (CI is): podman, buildah, runc and debootstrap are installed with apt
when missing, never skipped.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from deploy_helpers import REPO
from image_build import ULIMITS, podman
from packageurl import PackageURL

from tests.conftest import PG_ADMIN, free_port

SERVICES = ("accounts", "risk", "payments", "webhooks", "gateway")  # start order
MAX_IMAGE_MB = 400

# One worker runs every module that uses the image (built once per session, conftest.py),
# and no other worker removes it while a test runs it.
pytestmark = [pytest.mark.timeout(1800), pytest.mark.xdist_group("image")]


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


SBOM_DIR = "/usr/share/paymesh/sbom"  # docs/release.md; `make sbom` copies it out


def image_file(image: str, path: str) -> str:
    return podman(
        "run", "--rm", "--network", "none", *ULIMITS, "--health-interval", "disable",
        "--read-only", image, "cat", path,
    ).stdout  # fmt: skip


def schema_errors(document: str) -> str | None:
    """What CycloneDX 1.6's JSON schema finds wrong with the document (None: valid)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(document)
    return None if error is None else str(error)[:2000]


def runtime_lock() -> dict[str, tuple[str, set[str]]]:
    """{normalized name: (version, sha256 hashes)} of requirements.lock, read here on its
    own (not with tools/sbom_lock.py, which made the SBOM's hashes)."""
    pins: dict[str, tuple[str, set[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", (REPO / "requirements.lock").read_text()):
        pin = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        if pin:
            name = re.sub(r"[-_.]+", "-", pin[1]).lower()
            pins[name] = (pin[2], set(re.findall(r"--hash=sha256:([0-9a-f]{64})", block)))
    return pins


def test_image_carries_a_cyclonedx_sbom_of_its_locked_python_packages(image: str) -> None:
    document = image_file(image, f"{SBOM_DIR}/python.cdx.json")
    assert schema_errors(document) is None
    sbom = json.loads(document)
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["specVersion"] == "1.6"
    components = {re.sub(r"[-_.]+", "-", c["name"]).lower(): c for c in sbom.get("components", [])}
    locked = runtime_lock()
    assert len(locked) > 50
    wrong = {}
    for name, (version, hashes) in locked.items():
        component = components.get(name)
        if component is None:
            wrong[name] = "missing"
            continue
        # One hash: that of the file pip installed (pip's report), one the lock allows.
        got = [h["content"] for h in component.get("hashes", []) if h["alg"] == "SHA-256"]
        if component.get("version") != version or len(got) != 1 or got[0] not in hashes:
            wrong[name] = f"{component.get('version')} {got}; locked {version}"
    assert wrong == {}
    # What it describes is paymesh (the venv's only unlocked distribution); its components
    # are exactly the locked packages.
    assert sbom["metadata"]["component"]["name"] == "paymesh"
    assert set(components) == set(locked)
    # Neither pip nor setuptools ships (the build removes both), nor the SBOM's own tool.
    installed = podman(
        "run", "--rm", "--network", "none", *ULIMITS, "--health-interval", "disable",
        "--read-only", image, "python", "-c",
        "import importlib.metadata as m; print(sorted(d.name for d in m.distributions()))",
    ).stdout  # fmt: skip
    assert "'paymesh'" in installed
    for absent in ("pip", "setuptools", "cyclonedx-bom"):
        assert absent not in components
        assert f"'{absent}'" not in installed


def test_image_carries_a_cyclonedx_sbom_of_every_debian_package_it_has(image: str) -> None:
    document = image_file(image, f"{SBOM_DIR}/debian.cdx.json")
    assert schema_errors(document) is None
    sbom = json.loads(document)
    assert sbom["metadata"]["component"]["type"] == "operating-system"
    assert sbom["metadata"]["component"]["version"] == "12"
    listed = {c["name"]: c for c in sbom["components"]}
    # What dpkg in the final image says is installed, asked there.
    rows = podman(
        "run", "--rm", "--network", "none", *ULIMITS, "--health-interval", "disable",
        "--read-only", image, "dpkg-query", "--show",
        "--showformat", "${db:Status-Status} ${Package} ${Version} ${Architecture}\\n",
    ).stdout.split("\n")  # fmt: skip
    installed = {
        row.split()[1]: (row.split()[2], row.split()[3])
        for row in rows
        if row.startswith("installed ")
    }
    assert len(installed) > 50
    assert {"python3", "libc6"} <= installed.keys()
    assert {name: c["version"] for name, c in listed.items()} == {
        name: version for name, (version, _) in installed.items()
    }
    for name, (version, arch) in installed.items():
        purl = PackageURL.from_string(listed[name]["purl"])
        assert (purl.type, purl.namespace, purl.name, purl.version) == (
            "deb", "debian", name, version,
        )  # fmt: skip
        assert purl.qualifiers == {"arch": arch, "distro": "debian-12"}


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
