"""The paymesh image, built for real once per test session: a Debian bookworm base made
with debootstrap (cached under a tag), the paymesh image built on it with podman.
tests/deploy/conftest.py gives it to tests as the `image` fixture.

Needs root (CI is): podman, buildah, runc and debootstrap are installed with apt when
missing, never skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY, REPO

from tests.apt import ensure_packages

BASE_IMAGE = "localhost/paymesh-test-base:bookworm"
PODMAN = ("podman", "--runtime", "runc")
# crun fails on this machine's cgroups, and podman's default ulimits are refused here.
ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")


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
    built = podman(
        "build", "--format", "docker", "--layers=false", "--network", "host", *ULIMITS,
        "-f", str(DEPLOY / "Dockerfile"), "--ignorefile", str(DEPLOY / "Dockerfile.dockerignore"),
        "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--secret", f"id=pip.conf,src={secret}",
        *volumes, "-t", tag, str(REPO), timeout=1200, check=False,
    )  # fmt: skip
    if built.returncode == 0:
        return
    # Once in CI, podman exited 125 right after "Successfully tagged" (cause unknown: the
    # same tree built here without it). An image that was committed and tagged is taken,
    # the error printed; the tests then check the image itself. Any other failure fails.
    tagged = f"Successfully tagged {tag}" in built.stdout + built.stderr
    if not (tagged and podman("image", "exists", tag, check=False).returncode == 0):
        raise AssertionError(
            f"podman build exited {built.returncode}\n{built.stdout[-4000:]}"
            f"\n{built.stderr[-4000:]}"
        )
    print(f"\npodman build exited {built.returncode} after tagging {tag}:\n{built.stderr[-2000:]}")


def built_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The paymesh image, built for this session and removed after it."""
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
        # Whatever else the build left (a stage's image, untagged), not the images kept
        # under a tag (the cached base, the release tools image).
        untagged = podman(
            "images", "--all", "--no-trunc", "--filter", "dangling=true", "--format", "{{.ID}}"
        ).stdout.split()
        for leftover in set(untagged) - before:
            podman("rmi", "--force", leftover, check=False)
