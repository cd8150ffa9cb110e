"""tools/sbom_debian.py, which the image build runs (deploy/Dockerfile): the CycloneDX SBOM
of a Debian system's installed packages, from dpkg's database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from tests.tools import load_tool

ROOT = Path(__file__).resolve().parents[2]
STATUS = """\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u13
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: libstdc++6
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14+deb12u1)
Version: 12.2.0-14+deb12u1

Package: removed-but-configured
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2025b-0+deb12u2
"""
OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


def sbom_of(root: Path) -> dict:
    """The tool run as the image build runs it; its output checked against the schema."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "sbom_debian.py"), "--root", str(root)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out) is None
    return json.loads(out)


def test_installed_packages_only_each_with_exact_version_purl_and_source(
    tmp_path: Path,
) -> None:
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "var/lib/dpkg/status").write_text(STATUS)
    (tmp_path / "etc/os-release").write_text(OS_RELEASE)
    bom = sbom_of(tmp_path)
    assert bom["metadata"]["component"] == {
        "bom-ref": "debian-12",
        "type": "operating-system",
        "name": "debian",
        "version": "12",
        "description": "Debian GNU/Linux 12 (bookworm)",
    }
    components = {c["name"]: c for c in bom["components"]}
    assert sorted(components) == ["libc6", "libstdc++6", "tzdata"]  # not the config-files
    stdcxx = components["libstdc++6"]
    assert stdcxx["version"] == "12.2.0-14+deb12u1"
    purl = PackageURL.from_string(stdcxx["purl"])
    assert (purl.type, purl.namespace, purl.name, purl.version) == (
        "deb",
        "debian",
        "libstdc++6",
        "12.2.0-14+deb12u1",
    )
    assert purl.qualifiers == {"arch": "amd64", "distro": "debian-12"}
    assert stdcxx["properties"] == [{"name": "paymesh:deb:source", "value": "gcc-12"}]
    assert "properties" not in components["libc6"]  # its source has its own name
    assert PackageURL.from_string(components["tzdata"]["purl"]).qualifiers["arch"] == "all"
    (system,) = [d for d in bom["dependencies"] if d["ref"] == "debian-12"]
    assert len(system["dependsOn"]) == 3


def test_this_machine_every_package_dpkg_lists_at_its_version(tmp_path: Path) -> None:
    bom = sbom_of(Path("/"))
    listed = {c["name"]: c["version"] for c in bom["components"]}
    rows = subprocess.run(
        ["dpkg-query", "--show", "--showformat", "${db:Status-Status} ${Package} ${Version}\\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    installed = {r.split()[1]: r.split()[2] for r in rows if r.startswith("installed ")}
    assert len(installed) > 100
    assert listed == installed


def test_stanzas_join_continuation_lines() -> None:
    (libc, *_) = load_tool("sbom_debian").stanzas(STATUS)
    assert libc["Description"].endswith("nearly all programs on\nthe system.")
