"""Two steps of the image's SBOM build (deploy/Dockerfile, docs/release.md); stdlib only,
so the image's builder stage runs it with the base image's python3.

    python3 sbom_lock.py subset LOCK NAME               # LOCK's entries NAME needs, to stdout
    python3 sbom_lock.py hashes SBOM LOCK [REPORT]      # sha256 hashes into SBOM, in place

`subset` writes the entries of a uv lock (name==version, --hash lines, # via lines) that
NAME needs (NAME and what lists it, or what it needs, under `# via`), so pip can install
one tool from the dev lock with --require-hashes. `hashes` gives every component of a
CycloneDX JSON SBOM whose name and version are pinned in LOCK a sha256 hash: with REPORT
(pip's installation report, `pip install --report`), the hash of the very file pip
installed, which must be one of the lock's; without it, every hash the lock allows for
that release. A component at another version than the lock's is an error.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(lock_text: str) -> dict[str, dict[str, Any]]:
    """{normalized name: {name, version, hashes, via, text}} of a uv lock file."""
    entries: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    in_via = False
    for line in lock_text.splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", line)
        if pin:
            current = {"name": pin[1], "version": pin[2], "hashes": [], "via": set(), "text": []}
            entries[norm(pin[1])] = current
            in_via = False
        if current is None:
            continue
        stripped = line.strip()
        if not line.startswith((" ", "\t")) and not pin:
            current, in_via = None, False
            continue
        current["text"].append(line)
        current["hashes"] += re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        if stripped == "# via":
            in_via = True
        elif stripped.startswith("# via "):
            current["via"].add(norm(stripped[len("# via ") :].split()[0]))
            in_via = False
        elif in_via and stripped.startswith("#   "):
            current["via"].add(norm(stripped[4:].split()[0]))
        elif not stripped.startswith("#"):
            in_via = False
    return entries


def subset(lock_text: str, name: str) -> str:
    """The lock's entries that name needs: name, and every entry `# via` what is in."""
    entries = parse(lock_text)
    wanted = {norm(name)}
    if norm(name) not in entries:
        raise SystemExit(f"{name} is not in the lock")
    grown = True
    while grown:
        more = {key for key, entry in entries.items() if entry["via"] & wanted} - wanted
        wanted |= more
        grown = bool(more)
    return "".join("\n".join(entries[k]["text"]) + "\n" for k in sorted(wanted))


def installed_files(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """{normalized name: (version, sha256 of the file installed)} of a pip report."""
    files = {}
    for item in report.get("install", []):
        archive = item.get("download_info", {}).get("archive_info", {})
        sha256 = archive.get("hashes", {}).get("sha256") or (
            archive.get("hash", "").removeprefix("sha256=") or None
        )
        if sha256:
            meta = item["metadata"]
            files[norm(meta["name"])] = (meta["version"], sha256)
    return files


def add_hashes(
    bom: dict[str, Any], lock_text: str, report: dict[str, Any] | None = None
) -> list[str]:
    """Put sha256 hashes on the SBOM's locked components; the names given them. With a
    pip report, the one hash of the file installed (checked against the lock's)."""
    entries = parse(lock_text)
    installed = installed_files(report) if report is not None else {}
    done = []
    for component in bom.get("components", []):
        key = norm(component.get("name", ""))
        entry = entries.get(key)
        if entry is None:
            continue
        if component.get("version") != entry["version"]:
            raise SystemExit(
                f"{component['name']} {component.get('version')} in the SBOM, "
                f"{entry['version']} in the lock"
            )
        if report is not None:
            version, sha256 = installed.get(key, (None, None))
            if version != entry["version"] or sha256 not in entry["hashes"]:
                raise SystemExit(
                    f"{entry['name']}: pip's report has {version} {sha256}, not a locked file"
                )
            wanted = [sha256]
        else:
            wanted = entry["hashes"]
        known = {h["content"] for h in component.get("hashes", []) if h.get("alg") == "SHA-256"}
        component["hashes"] = component.get("hashes", []) + [
            {"alg": "SHA-256", "content": h} for h in wanted if h not in known
        ]
        done.append(entry["name"])
    return done


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "subset":
        sys.stdout.write(subset(Path(argv[1]).read_text(), argv[2]))
    elif len(argv) in (3, 4) and argv[0] == "hashes":
        sbom = Path(argv[1])
        bom = json.loads(sbom.read_text())
        report = json.loads(Path(argv[3]).read_text()) if len(argv) == 4 else None
        done = add_hashes(bom, Path(argv[2]).read_text(), report)
        sbom.write_text(json.dumps(bom, indent=2) + "\n")
        source = "the files pip installed" if report else argv[2]
        print(f"sha256 hashes of {source} on {len(done)} components", file=sys.stderr)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
