"""`make release` for real: the image the session built (conftest.py) is pushed to a local
registry (Debian's docker-registry on 127.0.0.1) and signed there with a sigstore key pair
made by `make release-key`; then a policy.json that requires the signature decides what
may be pulled: the signed release is pulled and runs, an unsigned image, a signed tag
whose image was replaced, a signed image under another tag and an image signed by
another key are refused (docs/release.md, tools/release.py).

Needs root (CI is): docker-registry and debootstrap are installed with apt when missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deploy_helpers import REPO
from image_build import BASE_IMAGE, ULIMITS, ensure_base_image, ensure_tools, podman

from tests.apt import ensure_packages
from tests.conftest import free_port

pytestmark = [pytest.mark.timeout(1800), pytest.mark.xdist_group("image")]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REFUSED_UNSIGNED = "A signature was required, but no signature exists"


def make(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"make {args[0]}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry on 127.0.0.1 (plain HTTP), storing in a temporary directory."""
    ensure_packages({"docker-registry": "docker-registry"})
    ensure_tools()
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    server = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "log", "w"),  # noqa: SIM115 - closed with the process
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (root / "log").read_text()
            assert time.monotonic() < deadline, "the registry did not answer"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def new_key(directory: Path, name: str) -> dict[str, str]:
    """A key pair from `make release-key`: the make variables that name it."""
    directory.mkdir(parents=True, exist_ok=True)
    passphrase = directory / f"{name}.passphrase"
    passphrase.touch(mode=0o600)
    passphrase.write_text(uuid.uuid4().hex)
    key = {"RELEASE_KEY": str(directory / name), "RELEASE_PASSPHRASE_FILE": str(passphrase)}
    make("release-key", *(f"{k}={v}" for k, v in key.items()))
    return key


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory, registry: str) -> dict[str, str]:
    return new_key(tmp_path_factory.mktemp("keys"), "paymesh")


def release(image: str, registry: str, key: dict[str, str], version: str, out: Path) -> dict:
    """`make release` of the built image (not built again) to the local registry."""
    make(
        "release", f"RELEASE_IMAGE={image}", f"REGISTRY={registry}", f"VERSION={version}",
        f"RELEASE_OUT={out}", "INSECURE_REGISTRY=1", *(f"{k}={v}" for k, v in key.items()),
    )  # fmt: skip
    return json.loads((out / "release.json").read_text())


@pytest.fixture(scope="module")
def released(
    image: str, registry: str, key: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("release")
    return release(image, registry, key, "v1.0.0", out), out


def verified_pull(
    registry: str, tag: str, out: Path, name: str
) -> subprocess.CompletedProcess[str]:
    """tools/release.py pull with the policy.json and registries.d the release wrote."""
    return subprocess.run(
        [
            sys.executable, str(REPO / "tools" / "release.py"), "pull", "--insecure",
            "--repository", f"{registry}/paymesh", "--tag", tag,
            "--policy", str(out / "policy.json"), "--registries-d", str(out / "registries.d"),
            "--load-as", name,
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def push_unsigned(image: str, registry: str, tag: str) -> None:
    podman("push", "--tls-verify=false", "--remove-signatures", image, f"{registry}/paymesh:{tag}")


@pytest.fixture
def local_name() -> Iterator[str]:
    name = f"localhost/paymesh-verified:{uuid.uuid4().hex[:12]}"
    yield name
    podman("rmi", "--force", name, check=False)


def test_the_signed_release_is_pulled_through_the_policy_and_runs(
    released: tuple[dict, Path], registry: str, image: str, local_name: str
) -> None:
    info, out = released
    assert info["image"] == f"{registry}/paymesh:v1.0.0"
    assert info["digest"].startswith("sha256:")
    # The signature sits in the registry beside the image, as cosign keeps it.
    tags = httpx.get(f"http://{registry}/v2/paymesh/tags/list").json()["tags"]
    assert info["digest"].replace(":", "-") + ".sig" in tags
    policy = json.loads((out / "policy.json").read_text())
    assert policy["default"] == [{"type": "reject"}]
    (requirement,) = policy["transports"]["docker"][f"{registry}/paymesh"]
    assert requirement["type"] == "sigstoreSigned"
    assert Path(requirement["keyPath"]).read_text() == Path(f"{out}/paymesh.pub").read_text()

    pulled = verified_pull(registry, "v1.0.0", out, local_name)
    assert pulled.returncode == 0, pulled.stderr[-3000:]
    ran = podman(
        "run", "--rm", "--network", "none", *ULIMITS, "--health-interval", "disable",
        local_name, "paymesh", "--help",
    )  # fmt: skip
    assert "serve" in ran.stdout
    # The image pulled is the image released: same layers as the one built here.
    (built,) = json.loads(podman("image", "inspect", image).stdout)
    (verified,) = json.loads(podman("image", "inspect", local_name).stdout)
    assert verified["RootFS"]["Layers"] == built["RootFS"]["Layers"]


def test_the_release_carries_its_sboms_alongside_with_checksums(
    released: tuple[dict, Path], image: str
) -> None:
    info, out = released
    sums = dict(
        reversed(line.split("  ", 1)) for line in (out / "SHA256SUMS").read_text().splitlines()
    )
    assert set(sums) == {"python.cdx.json", "debian.cdx.json", "paymesh.pub"}
    for name, digest in sums.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    for name in ("python.cdx.json", "debian.cdx.json"):
        assert info["sboms"][name] == f"sha256:{sums[name]}"
        inside = podman(
            "run", "--rm", "--network", "none", *ULIMITS, "--health-interval", "disable",
            image, "cat", f"/usr/share/paymesh/sbom/{name}",
        ).stdout  # fmt: skip
        assert (out / name).read_text() == inside
        assert json.loads(inside)["bomFormat"] == "CycloneDX"


def test_an_unsigned_image_is_refused(
    released: tuple[dict, Path], registry: str, local_name: str
) -> None:
    _, out = released
    ensure_base_image()
    push_unsigned(BASE_IMAGE, registry, "unsigned")
    pulled = verified_pull(registry, "unsigned", out, local_name)
    assert pulled.returncode != 0
    assert REFUSED_UNSIGNED in pulled.stderr
    assert podman("image", "exists", local_name, check=False).returncode != 0


def test_a_signed_tag_is_refused_once_its_image_is_replaced(
    image: str, registry: str, key: dict[str, str], tmp_path: Path, local_name: str
) -> None:
    out = tmp_path / "release"
    release(image, registry, key, "v1.0.1", out)
    before = verified_pull(registry, "v1.0.1", out, local_name)
    assert before.returncode == 0, before.stderr[-3000:]
    podman("rmi", "--force", local_name)

    ensure_base_image()
    push_unsigned(BASE_IMAGE, registry, "v1.0.1")
    after = verified_pull(registry, "v1.0.1", out, local_name)
    assert after.returncode != 0
    assert REFUSED_UNSIGNED in after.stderr
    assert podman("image", "exists", local_name, check=False).returncode != 0


def test_a_signed_image_under_another_tag_is_refused(
    released: tuple[dict, Path], registry: str, local_name: str
) -> None:
    """The signature names the tag it was made for: the same manifest (same digest, so
    the same signatures) put under `latest` does not pass as `latest`."""
    _, out = released
    base = f"http://{registry}/v2/paymesh/manifests"
    manifest = httpx.get(f"{base}/v1.0.0", headers={"Accept": OCI_MANIFEST})
    assert manifest.status_code == 200
    moved = httpx.put(
        f"{base}/latest",
        content=manifest.content,
        headers={"Content-Type": manifest.headers["Content-Type"]},
    )
    assert moved.status_code == 201
    pulled = verified_pull(registry, "latest", out, local_name)
    assert pulled.returncode != 0
    assert "not accepted" in pulled.stderr or "does not match" in pulled.stderr, pulled.stderr


def test_an_image_signed_by_another_key_is_refused(
    image: str,
    registry: str,
    released: tuple[dict, Path],
    tmp_path: Path,
    local_name: str,
) -> None:
    _, out = released  # its policy trusts the release key only
    other = new_key(tmp_path / "keys", "intruder")
    release(image, registry, other, "v9.9.9", tmp_path / "intruder")
    pulled = verified_pull(registry, "v9.9.9", out, local_name)
    assert pulled.returncode != 0
    assert "signature" in pulled.stderr.lower()
    assert REFUSED_UNSIGNED not in pulled.stderr  # there is one; it is the wrong key's
    assert podman("image", "exists", local_name, check=False).returncode != 0


def test_make_release_key_never_replaces_a_key(tmp_path: Path) -> None:
    # No passphrase file yet: one is made, random and private, and encrypts the key.
    key = {
        "RELEASE_KEY": str(tmp_path / "once"),
        "RELEASE_PASSPHRASE_FILE": str(tmp_path / "new" / "passphrase"),
    }
    made = make("release-key", *(f"{k}={v}" for k, v in key.items()))
    assert "a new random passphrase" in made.stdout
    passphrase = Path(key["RELEASE_PASSPHRASE_FILE"])
    assert len(passphrase.read_text()) >= 32
    assert oct(os.stat(passphrase).st_mode & 0o777) == "0o600"
    private = Path(f"{key['RELEASE_KEY']}.private")
    assert private.read_text().startswith("-----BEGIN ENCRYPTED")
    assert passphrase.read_text() not in private.read_text()
    assert oct(os.stat(private).st_mode & 0o777) == "0o600"
    before = private.read_bytes()
    again = subprocess.run(
        ["make", "-C", str(REPO), "release-key", *(f"{k}={v}" for k, v in key.items())],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode != 0
    assert "not replacing" in again.stdout + again.stderr
    assert private.read_bytes() == before


def test_make_release_refuses_bad_input_and_a_wrong_passphrase_and_writes_nothing(
    image: str, registry: str, key: dict[str, str], tmp_path: Path
) -> None:
    def attempt(version: str, **override: str) -> subprocess.CompletedProcess[str]:
        variables = {**key, **override}
        return subprocess.run(
            [
                "make", "-C", str(REPO), "release", f"RELEASE_IMAGE={image}",
                f"REGISTRY={registry}", f"VERSION={version}", f"RELEASE_OUT={tmp_path}/out",
                "INSECURE_REGISTRY=1", *(f"{k}={v}" for k, v in variables.items()),
            ],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    def refused(version: str, why: str, **override: str) -> None:
        result = attempt(version, **override)
        assert result.returncode != 0
        assert why in result.stdout + result.stderr

    refused("v1:2", "is not a valid image tag")
    refused("sha256-" + "0" * 64 + ".sig", "tags sha256-* hold signatures")
    refused("4acabba-dirty", "the work tree has changes")
    refused("v3.0.0", "make release-key makes the key pair", RELEASE_KEY=str(tmp_path / "no"))
    loose = tmp_path / "loose"
    loose.write_text("a passphrase")
    loose.chmod(0o644)
    refused("v3.0.0", "is readable by others", RELEASE_PASSPHRASE_FILE=str(loose))
    empty = tmp_path / "empty"
    empty.touch(mode=0o600)
    refused("v3.0.0", "is empty", RELEASE_PASSPHRASE_FILE=str(empty))
    # A wrong passphrase is found by the signing, after the layers went up: no tag, no file.
    wrong = tmp_path / "wrong"
    wrong.touch(mode=0o600)
    wrong.write_text("not the passphrase")
    refused("v3.0.0", "does not decrypt", RELEASE_PASSPHRASE_FILE=str(wrong))
    tags = httpx.get(f"http://{registry}/v2/paymesh/tags/list").json()["tags"]
    assert "v3.0.0" not in tags
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []
