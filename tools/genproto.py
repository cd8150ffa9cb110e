"""Generate the Python gRPC code under src/paymesh/contracts from proto/.

The .proto files live at proto/paymesh/<service>/v1/ (their package is
paymesh.<service>.v1), but the generated modules must live under
paymesh.contracts so they never shadow the service packages. protoc derives
module paths from file paths, so the files are staged at
paymesh/contracts/<service>/v1/ before compiling.

    python tools/genproto.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"


def generate(out: Path) -> list[Path]:
    """Compile every .proto into `out` (a src/ root); return the files written."""
    with tempfile.TemporaryDirectory() as tmp:
        staged: list[str] = []
        for src in sorted(PROTO.glob("paymesh/*/v1/*.proto")):
            rel = src.relative_to(PROTO / "paymesh")
            dst = Path(tmp) / "paymesh" / "contracts" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            text = src.read_text().replace('import "paymesh/', 'import "paymesh/contracts/')
            dst.write_text(text)
            staged.append(str(dst.relative_to(tmp)))
        include = str(Path(protoc.__file__).parent / "_proto")
        # The mypy plugins are installed beside this interpreter.
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        args = [
            "protoc",
            f"-I{tmp}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            *staged,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        written = []
        for name in staged:
            pkg = out / Path(name).parent
            for d in [pkg, *pkg.parents]:
                if d == out or not str(d).startswith(str(out)):
                    break
                init = d / "__init__.py"
                if not init.exists():
                    init.write_text("")
            written.extend(sorted(pkg.glob(Path(name).stem + "_pb2*")))
        return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "src")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path.relative_to(args.out))


if __name__ == "__main__":
    sys.exit(main())
