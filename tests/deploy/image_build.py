"""The paymesh image, built for real once per test session as `make image` builds it
(tools/container_image.py): a Debian bookworm base made with debootstrap (kept under its
tag), the paymesh image built on it with podman.
tests/deploy/conftest.py gives it to tests as the `image` fixture.

Needs root (CI is): podman, buildah, runc and debootstrap are installed with apt when
missing, never skipped.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

from tests.apt import ensure_packages
from tests.tools import load_tool

container_image = load_tool("container_image")

BASE_IMAGE = container_image.BASE_IMAGE
PODMAN = container_image.PODMAN
ULIMITS = container_image.ULIMITS


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


def ensure_base_image() -> None:
    """The Debian base (tools/container_image.py base), made once and kept under its tag."""
    container_image.ensure_base_image(BASE_IMAGE)


def build_image(tag: str) -> None:
    """The paymesh image on the local base, as `make image` builds it."""
    container_image.build(tag, BASE_IMAGE)


def built_image() -> Iterator[str]:
    """The paymesh image, built for this session and removed after it."""
    started = time.monotonic()
    ensure_tools()
    ensure_base_image()
    base_ready = time.monotonic()
    tag = f"localhost/paymesh-test:{uuid.uuid4().hex[:12]}"
    before = set(podman("images", "--all", "--quiet", "--no-trunc").stdout.split())
    try:
        build_image(tag)
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
