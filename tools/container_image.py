"""Build the paymesh image with podman, on a Debian base made here (docs/deploy.md).

    python tools/container_image.py base  [--tag TAG]
    python tools/container_image.py build --tag TAG [--base IMAGE]

`base` makes a minimal Debian 12 with python3 and its venv module by debootstrap, from the
host's Debian mirror, and keeps it under its tag (localhost/paymesh-base:bookworm): a
base that needs no registry but Debian's. `build` builds deploy/Dockerfile on it (or on
--base) and passes the host's pip settings (its index and the CA bundle it trusts, e.g.
a TLS-inspecting proxy's) as build secrets, so that neither ends up in a layer.
`make image`, `make release` and the image tests use it.

Also the shared pieces of tools/release.py: podman, the host's mirror, an image made
from a debootstrap tree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE = "localhost/paymesh-base:bookworm"
# crun fails on some hosts' cgroups (this project's CI machines among them): runc.
PODMAN = (os.environ.get("PODMAN", "podman"), "--runtime", os.environ.get("OCI_RUNTIME", "runc"))
# podman's default ulimits are refused on some hosts (this project's CI machines too).
ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")
JUNK = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
        "usr/share/locale", "usr/share/info")  # fmt: skip


class CommandFailed(SystemExit):
    pass


def run(*args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (bounded); fail with its output unless it succeeded."""
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        missing = f"{args[0]} is not installed (Debian: apt-get install {args[0]})"
        raise CommandFailed(missing) from None
    if check and result.returncode != 0:
        raise CommandFailed(
            f"{' '.join(args[:8])} ... exited {result.returncode}\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def podman(
    *args: str, timeout: float = 900, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run(*PODMAN, *args, timeout=timeout, check=check)


def debian_mirror() -> str:
    """DEBIAN_MIRROR, else the Debian mirror the host's apt uses when the host is Debian
    (deb822 .sources or sources.list), else deb.debian.org."""
    if mirror := os.environ.get("DEBIAN_MIRROR"):
        return mirror
    release = Path("/etc/os-release")
    if "ID=debian" not in (release.read_text() if release.exists() else "").splitlines():
        return "http://deb.debian.org/debian"  # an Ubuntu runner's mirror has no Debian
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1)
                for line in stanza.splitlines()
                if ":" in line and not line.startswith("#")
            )
            uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
            if uris and any("-" not in suite for suite in suites):  # not -security, -updates
                return uris[0]
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        for line in path.read_text().splitlines() if path.exists() else []:
            words = line.split()
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def debootstrap_image(tag: str, suite: str, packages: list[str], cmd: str) -> None:
    """A minbase Debian `suite` with `packages`, imported under `tag` unless it exists."""
    if podman("image", "exists", tag, check=False).returncode == 0:
        return
    if shutil.which("debootstrap") is None:
        raise CommandFailed(f"debootstrap is needed to make {tag}: apt-get install debootstrap")
    work = Path(tempfile.mkdtemp(prefix="paymesh-rootfs-", dir="/var/tmp"))
    try:
        rootfs = work / "rootfs"
        run(
            "debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite,
            str(rootfs), debian_mirror(), timeout=1200,
        )  # fmt: skip
        for junk in JUNK:
            shutil.rmtree(rootfs / junk, ignore_errors=True)
            (rootfs / junk).mkdir(parents=True, exist_ok=True)
        tarball = work / "rootfs.tar"
        run("tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), ".")
        podman("import", "--change", f"CMD {cmd}", str(tarball), tag)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_base_image(tag: str = BASE_IMAGE) -> str:
    debootstrap_image(tag, "bookworm", ["python3", "python3-venv", "ca-certificates"],
                      '["python3"]')  # fmt: skip
    return tag


def pip_config(name: str) -> str:
    got = run(sys.executable, "-m", "pip", "config", "get", name, check=False)
    return got.stdout.strip() if got.returncode == 0 else ""


def host_ca_bundle() -> Path | None:
    """The CA bundle the host's pip trusts (a TLS-inspecting proxy's CA may be in it)."""
    candidates = [os.environ.get(v) for v in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")]
    candidates += [pip_config("global.cert"), "/etc/ssl/certs/ca-certificates.crt"]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def host_index_url() -> str | None:
    """The package index the host's pip uses, if not the default."""
    url = os.environ.get("PIP_INDEX_URL") or pip_config("global.index-url")
    return url if url.startswith(("http://", "https://")) else None


def build(tag: str, base: str) -> None:
    """deploy/Dockerfile on `base`, tagged `tag`, with the host's pip settings as a secret."""
    secrets: list[str] = []
    pip_conf = ["[global]"]
    if (ca := host_ca_bundle()) is not None:
        secrets += ["--secret", f"id=ca.crt,src={ca}"]
        pip_conf.append("cert = /run/secrets/ca.crt")
    if (index := host_index_url()) is not None:
        pip_conf.append(f"index-url = {index}")
    with tempfile.TemporaryDirectory(prefix="paymesh-build-") as tmp:
        secret = Path(tmp) / "pip.conf"
        secret.write_text("\n".join(pip_conf) + "\n")
        secret.chmod(0o600)
        built = podman(
            "build", "--format", "docker", "--layers=false", "--network", "host", *ULIMITS,
            "-f", str(REPO / "deploy" / "Dockerfile"),
            "--ignorefile", str(REPO / "deploy" / "Dockerfile.dockerignore"),
            "--build-arg", f"BASE_IMAGE={base}", "--secret", f"id=pip.conf,src={secret}",
            *secrets, "-t", tag, str(REPO), timeout=1800, check=False,
        )  # fmt: skip
    if built.returncode == 0:
        return
    # Once in CI, podman exited 125 right after "Successfully tagged" (cause unknown: the
    # same tree built here without it). An image that was committed and tagged is taken,
    # the error printed; what uses it checks the image itself. Any other failure fails.
    tagged = f"Successfully tagged {tag}" in built.stdout + built.stderr
    if not (tagged and podman("image", "exists", tag, check=False).returncode == 0):
        raise CommandFailed(
            f"podman build exited {built.returncode}\n{built.stdout[-4000:]}"
            f"\n{built.stderr[-4000:]}"
        )
    print(f"podman build exited {built.returncode} after tagging {tag}:\n{built.stderr[-2000:]}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    base = commands.add_parser("base")
    base.add_argument("--tag", default=BASE_IMAGE)
    make = commands.add_parser("build")
    make.add_argument("--tag", required=True)
    make.add_argument("--base", help=f"default: {BASE_IMAGE}, made when missing")
    args = parser.parse_args(argv)
    if args.command == "base":
        print(ensure_base_image(args.tag))
    else:
        build(args.tag, args.base or ensure_base_image())
        print(args.tag)


if __name__ == "__main__":
    main(sys.argv[1:])
