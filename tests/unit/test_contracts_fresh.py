"""The generated gRPC code under src/paymesh/contracts matches proto/."""

from __future__ import annotations

from pathlib import Path

from tests.tools import load_tool

ROOT = Path(__file__).resolve().parents[2]


def test_committed_contracts_are_what_make_proto_generates(tmp_path: Path) -> None:
    written = load_tool("genproto").generate(tmp_path)
    assert written, "no .proto file was compiled"
    stale = []
    for path in written:
        rel = path.relative_to(tmp_path)
        committed = ROOT / "src" / rel
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(str(rel))
    assert stale == [], f"run `make proto`: stale generated files {stale}"


def test_every_proto_has_generated_code() -> None:
    protos = sorted(ROOT.glob("proto/paymesh/*/v1/*.proto"))
    assert len(protos) >= 3
    for proto in protos:
        service = proto.parent.parent.name
        generated = ROOT / "src/paymesh/contracts" / service / "v1" / f"{proto.stem}_pb2.py"
        assert generated.exists(), f"{generated} missing: run `make proto`"
