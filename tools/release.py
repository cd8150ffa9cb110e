"""Publish a paymesh image signed, and pull it only when its signature checks out
(docs/release.md). `make release`, `make release-key` and `make sbom` call it.

    python tools/release.py keygen  --output-prefix PREFIX --passphrase-file FILE
    python tools/release.py sbom    --image IMAGE --out DIR
    python tools/release.py publish --image IMAGE --repository HOST/NAME --tag TAG \\
        --key PRIVATE --public-key PUBLIC --passphrase-file FILE --out DIR [--insecure]
    python tools/release.py pull    --repository HOST/NAME --tag TAG --policy POLICY \\
        --registries-d DIR --load-as LOCAL_NAME [--insecure]

Signatures are sigstore signatures made with a key pair, stored in the registry beside
the image as cosign does (`sha256-<digest>.sig`). The signing and the verifying are
skopeo's own (`--sign-by-sigstore-private-key`, a `sigstoreSigned` policy). Debian 12's
skopeo and podman are built with sigstore disabled ("Debian-local change: sigstore
disabled"), so skopeo runs from a small Debian 13 image made here with debootstrap
(localhost/paymesh-release-tools:trixie, made once and kept), on the host's network.
Where the host's own podman or skopeo supports sigstore (Debian 13, Fedora, upstream),
the policy.json that `publish` writes is used as it is (docs/release.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import container_image
from container_image import PODMAN, ULIMITS, CommandFailed, debootstrap_image

TOOLS_IMAGE = "localhost/paymesh-release-tools:trixie"
SBOM_DIR = "/usr/share/paymesh/sbom"  # deploy/Dockerfile
SBOMS = ("python.cdx.json", "debian.cdx.json")


class ReleaseError(CommandFailed):
    """What the release refuses before or while it runs a command."""


def run(*args: str, timeout: float = 900, quiet: bool = False) -> str:
    """A command's stdout, what it printed to stderr passed on; CommandFailed when it fails."""
    result = container_image.run(*args, timeout=timeout)
    if not quiet and result.stderr.strip():
        print(result.stderr.strip()[-2000:], file=sys.stderr)
    return result.stdout


def ensure_tools_image() -> None:
    """Debian 13 (minbase) with skopeo, made once and kept under TOOLS_IMAGE. skopeo needs
    a container network stack (a virtual package debootstrap cannot choose): netavark."""
    debootstrap_image(TOOLS_IMAGE, "trixie", ["skopeo", "netavark", "ca-certificates"],
                      '["skopeo", "--help"]')  # fmt: skip


def skopeo(*args: str, mounts: list[Path], timeout: float = 900) -> str:
    """skopeo from the tools image, on the host's network, each mount at its own path. The
    host's registry credentials (REGISTRY_AUTH_FILE, else podman login's file) and its
    registry certificates (/etc/containers/certs.d) are mounted read-only when present."""
    ensure_tools_image()
    volumes: list[str] = []
    for path in dict.fromkeys(p.resolve() for p in mounts):
        volumes += ["--volume", f"{path}:{path}"]
    env: list[str] = []
    auth = Path(os.environ.get("REGISTRY_AUTH_FILE") or f"/run/containers/{os.getuid()}/auth.json")
    if auth.is_file():
        volumes += ["--volume", f"{auth.resolve()}:/run/paymesh-auth.json:ro"]
        env += ["--env", "REGISTRY_AUTH_FILE=/run/paymesh-auth.json"]
    if Path("/etc/containers/certs.d").is_dir():
        volumes += ["--volume", "/etc/containers/certs.d:/etc/containers/certs.d:ro"]
    return run(
        *PODMAN, "run", "--rm", "--network", "host", *ULIMITS, *volumes, *env, TOOLS_IMAGE,
        "skopeo", *args, timeout=timeout,
    )  # fmt: skip


def check_passphrase_file(path: Path) -> None:
    """A passphrase file must hold a passphrase and be readable by its owner only."""
    if not path.is_file():
        raise ReleaseError(f"{path} does not exist (make release-key makes one)")
    if path.stat().st_mode & 0o077:
        raise ReleaseError(f"{path} is readable by others: chmod 600 {path}")
    if not path.read_text().strip():
        raise ReleaseError(f"{path} is empty: a key would be encrypted with no passphrase")


def keygen(prefix: Path, passphrase_file: Path) -> None:
    prefix = prefix.resolve()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for existing in (Path(f"{prefix}.private"), Path(f"{prefix}.pub")):
        if existing.exists():
            raise ReleaseError(f"{existing} exists; not replacing a signing key")
    if not passphrase_file.exists():
        passphrase_file.parent.mkdir(parents=True, exist_ok=True)
        passphrase_file.touch(mode=0o600)
        passphrase_file.write_text(secrets.token_urlsafe(32))
        print(f"a new random passphrase in {passphrase_file} (mode 0600)")
    check_passphrase_file(passphrase_file)
    skopeo(
        "generate-sigstore-key", "--output-prefix", str(prefix),
        "--passphrase-file", str(passphrase_file.resolve()),
        mounts=[prefix.parent, passphrase_file.parent],
    )  # fmt: skip
    Path(f"{prefix}.private").chmod(0o600)
    print(f"{prefix}.private (keep it secret) and {prefix}.pub (give it to operators)")


def extract_sboms(image: str, out: Path) -> list[Path]:
    """The SBOMs the image carries, copied out of it into out/."""
    out.mkdir(parents=True, exist_ok=True)
    container = run(*PODMAN, "create", image).strip()
    try:
        for name in SBOMS:
            run(*PODMAN, "cp", f"{container}:{SBOM_DIR}/{name}", str(out / name))
    finally:
        run(*PODMAN, "rm", container, quiet=True)
    return [out / name for name in SBOMS]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def registries_d(directory: Path, repository: str) -> Path:
    """containers-registries.d(5): sigstore signatures live in the registry, as cosign's."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "paymesh.yaml").write_text(
        f"docker:\n  {repository}:\n    use-sigstore-attachments: true\n"
    )
    return directory


def policy(repository: str, public_key: Path) -> dict[str, object]:
    """containers-policy.json(5): this repository's images only when signed by the key, for
    the tag they were signed as (or by digest); everything else refused."""
    return {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                repository: [
                    {
                        "type": "sigstoreSigned",
                        "keyPath": str(public_key.resolve()),
                        "signedIdentity": {"type": "matchRepoDigestOrExact"},
                    }
                ]
            }
        },
    }


TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
REPOSITORY = re.compile(r"[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+")


def check_reference(repository: str, tag: str) -> None:
    if not TAG.fullmatch(tag):
        raise ReleaseError(f"{tag!r} is not a valid image tag")
    if tag.startswith("sha256-"):
        raise ReleaseError(f"{tag!r}: tags sha256-* hold signatures and attestations")
    if not REPOSITORY.fullmatch(repository):
        raise ReleaseError(f"{repository!r} is not a registry/name repository")


def check_inputs(args: argparse.Namespace) -> None:
    """Everything publish needs, checked before anything is built, pushed or written."""
    check_reference(args.repository, args.tag)
    if args.tag.endswith("-dirty"):
        raise ReleaseError(f"{args.tag!r}: the work tree has changes; commit them first")
    for path in (args.key, args.public_key):
        if not path.is_file():
            raise ReleaseError(f"{path} does not exist (make release-key makes the key pair)")
    check_passphrase_file(args.passphrase_file)
    if args.out.exists() and any(args.out.iterdir()):
        raise ReleaseError(f"{args.out} exists: a release directory is written once")


def publish(args: argparse.Namespace) -> None:
    check_inputs(args)
    out: Path = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    reference = f"{args.repository}:{args.tag}"
    # Written aside, and renamed to `out` only once the image is pushed and signed.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        sboms = extract_sboms(args.image, staging)
        regs = registries_d(staging / "registries.d", args.repository)
        digest = push_signed(args, reference, regs)
        public_key = staging / "paymesh.pub"
        shutil.copyfile(args.public_key, public_key)
        # keyPath names the key where it will be once the directory is in place.
        policy_json = json.dumps(policy(args.repository, out / public_key.name), indent=2)
        (staging / "policy.json").write_text(policy_json + "\n")
        sums = "".join(f"{sha256(p)}  {p.name}\n" for p in (*sboms, public_key))
        (staging / "SHA256SUMS").write_text(sums)
        release = {
            "image": reference,
            "digest": digest,
            "pinned": f"{args.repository}@{digest}",
            "signature": f"{args.repository}:{digest.replace(':', '-')}.sig",
            "sboms": {p.name: f"sha256:{sha256(p)}" for p in sboms},
            "sboms_in_image": SBOM_DIR,
        }
        (staging / "release.json").write_text(json.dumps(release, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty: check_inputs refused a full one
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(json.dumps(release, indent=2))


def push_signed(args: argparse.Namespace, reference: str, regs: Path) -> str:
    """Push the image to `reference` and sign it there; the digest pushed."""
    with tempfile.TemporaryDirectory(prefix="paymesh-release-", dir="/var/tmp") as tmp:
        archive = Path(tmp) / "image.tar"
        run(*PODMAN, "save", "--format", "oci-archive", "-o", str(archive), args.image)
        try:
            skopeo(
                "--registries.d", str(regs), "copy", "--retry-times", "2",
                *(["--dest-tls-verify=false"] if args.insecure else []),
                "--sign-by-sigstore-private-key", str(args.key.resolve()),
                "--sign-passphrase-file", str(args.passphrase_file.resolve()),
                "--digestfile", f"{tmp}/digest", f"oci-archive:{archive}",
                f"docker://{reference}",
                mounts=[Path(tmp), regs, args.key.parent, args.passphrase_file.parent],
            )  # fmt: skip
        except CommandFailed as exc:
            if "decryption failed" in str(exc):
                raise ReleaseError(
                    f"the passphrase in {args.passphrase_file} does not decrypt {args.key}: "
                    f"nothing was tagged or signed (the layers pushed stay untagged)"
                ) from None
            raise
        return (Path(tmp) / "digest").read_text().strip()


def pull(args: argparse.Namespace) -> None:
    """Copy the image out of the registry only if the policy accepts it, then load it."""
    check_reference(args.repository, args.tag)
    policy_file: Path = args.policy.resolve()
    try:
        document = json.loads(policy_file.read_text())
        key_dirs = [
            Path(req["keyPath"]).parent
            for scopes in document.get("transports", {}).values()
            for requirements in scopes.values()
            for req in requirements
            if "keyPath" in req
        ]
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ReleaseError(f"{policy_file}: not a readable policy.json ({exc})") from None
    if not args.registries_d.is_dir():
        raise ReleaseError(f"{args.registries_d} is not a directory (release's registries.d)")
    with tempfile.TemporaryDirectory(prefix="paymesh-pull-", dir="/var/tmp") as tmp:
        archive = Path(tmp) / "image.tar"
        # The signatures are checked on the way; an archive cannot keep them.
        skopeo(
            "--policy", str(policy_file), "--registries.d", str(args.registries_d.resolve()),
            "copy", "--remove-signatures",
            *(["--src-tls-verify=false"] if args.insecure else []),
            f"docker://{args.repository}:{args.tag}", f"oci-archive:{archive}",
            mounts=[Path(tmp), policy_file.parent, args.registries_d, *key_dirs],
        )  # fmt: skip
        loaded = run(*PODMAN, "load", "--quiet", "-i", str(archive)).strip()
    image_id = loaded.rsplit(" ", 1)[-1].removeprefix("sha256:")
    run(*PODMAN, "tag", image_id, args.load_as)
    print(f"verified and loaded as {args.load_as}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    key = commands.add_parser("keygen")
    key.add_argument("--output-prefix", type=Path, required=True)
    key.add_argument("--passphrase-file", type=Path, required=True)
    sbom = commands.add_parser("sbom")
    sbom.add_argument("--image", required=True)
    sbom.add_argument("--out", type=Path, required=True)
    pub = commands.add_parser("publish")
    pub.add_argument("--image", required=True)
    pub.add_argument("--repository", required=True)
    pub.add_argument("--tag", required=True)
    pub.add_argument("--key", type=Path, required=True)
    pub.add_argument("--public-key", type=Path, required=True)
    pub.add_argument("--passphrase-file", type=Path, required=True)
    pub.add_argument("--out", type=Path, required=True)
    pub.add_argument("--insecure", action="store_true", help="plain HTTP registry (tests)")
    get = commands.add_parser("pull")
    get.add_argument("--repository", required=True)
    get.add_argument("--tag", required=True)
    get.add_argument("--policy", type=Path, required=True)
    get.add_argument("--registries-d", type=Path, required=True)
    get.add_argument("--load-as", required=True)
    get.add_argument("--insecure", action="store_true", help="plain HTTP registry (tests)")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        keygen(args.output_prefix, args.passphrase_file)
    elif args.command == "sbom":
        for path in extract_sboms(args.image, args.out):
            print(path)
    elif args.command == "publish":
        publish(args)
    else:
        pull(args)


if __name__ == "__main__":
    main(sys.argv[1:])
