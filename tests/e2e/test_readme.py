"""The README's shell block "A first payment by hand", run as written with bash against
the embedded platform: it works with curl and python3 alone and prints the balances."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from .conftest import Running

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(heading: str) -> str:
    """The first fenced ``sh`` block under `heading` (a ``## `` line) in the README."""
    text = README.read_text()
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^```sh\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert match, f"no sh block under {heading!r}"
    return match.group(1)


@pytest.mark.timeout(120)
async def test_the_first_payment_block_of_the_readme_runs_and_prints_both_balances(
    embedded: Running, tmp_path: Path
) -> None:
    for tool in ("bash", "curl", "python3"):
        assert shutil.which(tool), f"the README block needs {tool}"
    block = readme_block("## A first payment by hand")
    assert "uuidgen" not in block
    assert "jq" not in block.split()
    script = tmp_path / "first-payment.sh"
    script.write_text(block)
    # The block reads var/demo-credentials.json from where it runs: the platform's var/.
    assert (tmp_path / "var" / "demo-credentials.json").is_file()
    # errexit and pipefail: any failing step (a curl answering 4xx, a missing field) fails.
    proc = await asyncio.create_subprocess_exec(
        "bash", "-eo", "pipefail", str(script),
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PAYMESH_URL": embedded.url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=100)
    assert proc.returncode == 0, (out.decode(), err.decode())
    lines = out.decode().splitlines()
    assert lines[:2] == ["top-up: succeeded", "payment: succeeded"], lines
    assert re.fullmatch(r"customer acct_\S+ available: 7500 USD", lines[2]), lines
    assert re.fullmatch(r"merchant acct_\S+ available: 2500 USD", lines[3]), lines
    assert len(lines) == 4, lines
    assert err.decode() == ""
