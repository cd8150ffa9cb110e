"""Two steps of the image's SBOM build (deploy/Dockerfile, docs/release.md); stdlib only,
so the image's builder stage runs it with the base image's python3.

    python3 sbom_lock.py subset LOCK NAME        # LOCK's entries NAME needs, to stdout
    python3 sbom_lock.py hashes SBOM LOCK        # LOCK's sha256 hashes into SBOM, in place

`subset` writes the entries of a uv lock (name==version, --hash lines, # via lines) that
NAME needs (NAME and what lists it, or what it needs, under `# via`), so pip can install
one tool from the dev lock with --require-hashes. `hashes` gives every component of a
CycloneDX JSON SBOM whose name and version are pinned in LOCK the lock's sha256 hashes
(the files pip accepted); a component at another version than the lock's is an error.
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


def add_hashes(bom: dict[str, Any], lock_text: str) -> list[str]:
    """Put the lock's sha256 hashes on the SBOM's components; the names given them."""
    entries = parse(lock_text)
    done = []
    for component in bom.get("components", []):
        entry = entries.get(norm(component.get("name", "")))
        if entry is None:
            continue
        if component.get("version") != entry["version"]:
            raise SystemExit(
                f"{component['name']} {component.get('version')} in the SBOM, "
                f"{entry['version']} in the lock"
            )
        known = {h["content"] for h in component.get("hashes", []) if h.get("alg") == "SHA-256"}
        component["hashes"] = component.get("hashes", []) + [
            {"alg": "SHA-256", "content": h} for h in entry["hashes"] if h not in known
        ]
        done.append(entry["name"])
    return done


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "subset":
        sys.stdout.write(subset(Path(argv[1]).read_text(), argv[2]))
    elif len(argv) == 3 and argv[0] == "hashes":
        sbom = Path(argv[1])
        bom = json.loads(sbom.read_text())
        done = add_hashes(bom, Path(argv[2]).read_text())
        sbom.write_text(json.dumps(bom, indent=2) + "\n")
        print(f"sha256 hashes from {argv[2]} on {len(done)} components", file=sys.stderr)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
