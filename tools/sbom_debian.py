"""The CycloneDX JSON SBOM of a Debian system's installed packages, to stdout.

    python sbom_debian.py [--root /]

Reads dpkg's database (`var/lib/dpkg/status`) and `etc/os-release` under the root, and
lists every package dpkg says is installed: its name, exact version and architecture,
with a purl (`pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12`) and, where the
binary package comes from a differently named source package, the source as a property.
The operating system itself is the SBOM's subject (`metadata.component`).

Runs in the image build (deploy/Dockerfile) from the throwaway venv that has
cyclonedx-python-lib, which cyclonedx-bom brings; docs/release.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from packageurl import PackageURL

SOURCE_PROPERTY = "paymesh:deb:source"


def stanzas(status: str) -> list[dict[str, str]]:
    """dpkg's status file as one dict per package (continuation lines joined)."""
    packages: list[dict[str, str]] = []
    for block in status.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Package"):
            packages.append(fields)
    return packages


def os_release(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key: value.strip().strip('"') for key, value in pairs}


def installed(status: str) -> list[dict[str, str]]:
    """The packages dpkg lists as installed (`Status: install ok installed`)."""
    return [p for p in stanzas(status) if p.get("Status", "").split()[-1:] == ["installed"]]


def build(root: Path) -> Bom:
    release = os_release((root / "etc/os-release").read_text())
    distro_id = release.get("ID", "debian")
    distro = f"{distro_id}-{release.get('VERSION_ID', '')}".rstrip("-")
    bom = Bom()
    system = Component(
        type=ComponentType.OPERATING_SYSTEM,
        name=distro_id,
        version=release.get("VERSION_ID"),
        description=release.get("PRETTY_NAME"),
        bom_ref=distro,
    )
    bom.metadata.component = system
    for package in installed((root / "var/lib/dpkg/status").read_text()):
        name, version = package["Package"], package["Version"]
        arch = package.get("Architecture", "")
        source = package.get("Source", "").split(" ")[0]
        purl = PackageURL(
            type="deb",
            namespace=distro_id,
            name=name,
            version=version,
            qualifiers={"arch": arch, "distro": distro},
        )
        bom.components.add(
            Component(
                type=ComponentType.LIBRARY,
                name=name,
                version=version,
                purl=purl,
                bom_ref=purl.to_string(),
                properties=[Property(name=SOURCE_PROPERTY, value=source)]
                if source and source != name
                else None,
            )
        )
    # The system is made of its packages (which package needs which is not recorded).
    bom.register_dependency(system, bom.components)
    return bom


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/"))
    args = parser.parse_args(argv)
    output = make_outputter(build(args.root), OutputFormat.JSON, SchemaVersion.V1_6)
    sys.stdout.write(output.output_as_string(indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
