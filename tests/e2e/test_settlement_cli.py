"""The settlement commands as an operator runs them against a running platform:
``paymesh settle``, ``paymesh bank execute`` (the simulated bank) and ``paymesh recon
import``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from .conftest import Running
from .settlement_helpers import (
    BANKS,
    available,
    breaks,
    key,
    new_tenant,
    open_account,
    pain001,
    pay,
)

PAYMESH = Path(sys.executable).parent / "paymesh"


async def _paymesh(env: dict[str, str], *args: str, code: int = 0) -> str:
    """Run the command beside the platform (this process serves it: never block its loop)."""
    done = await asyncio.to_thread(
        subprocess.run,
        [str(PAYMESH), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
    return done.stdout + done.stderr


async def test_an_operator_settles_executes_the_file_at_the_bank_and_reconciles(
    embedded: Running, tmp_path: Path
) -> None:
    settings = embedded.platform.settings
    env = {
        **os.environ,
        "PAYMESH_VAR_DIR": str(settings.var_dir),
        "PAYMESH_PAYMENTS__LISTEN": settings.payments.listen,
        "PAYMESH_PAYMENTS__TARGET": settings.payments.listen,
    }
    tenant, api = await new_tenant(embedded.url, embedded.creds)
    try:
        payer = await open_account(api, "customer")
        await api.post(
            "/v1/topups", {"account_id": payer, "amount": 50_000, "currency": "EUR"}, key=key()
        )
        m1, m2 = [await open_account(api, "merchant", bank) for bank in BANKS[:2]]
        await pay(api, payer, m1, 10_000)
        await pay(api, payer, m2, 5_000)

        out = await _paymesh(env, "settle", "--tenant", tenant, "--currency", "eur")
        assert "paid_out, 2 lines" in out, out
        assert f"{m1}\tgross 10000\trefunds 0\tfees 130\tcarried 0\tnet 9870\tpayout" in out
        runs = (await api.get("/v1/settlement_runs"))["data"]
        [run] = runs
        assert run["payout_batch_id"] in out
        bad = await _paymesh(env, "settle", "--tenant", tenant, "--currency", "EUR",
                       "--cutoff", "2020-01-01T00:00:00Z", code=1)  # fmt: skip
        assert "cutoff_before_last_run" in bad
        assert "invalid cutoff" in await _paymesh(
            env, "settle", "--tenant", tenant, "--currency", "EUR", "--cutoff", "soon", code=2
        )

        pain = tmp_path / "batch.pain.001.xml"
        pain.write_bytes(await pain001(api, run["payout_batch_id"]))
        camt = tmp_path / "statement.camt.053.xml"
        payout_m2 = next(x["payout_id"] for x in run["lines"] if x["account_id"] == m2)
        out = await _paymesh(env, "bank", "execute", str(pain), "--out", str(camt),
                       "--statement-id", "CLI-1", "--return", f"{payout_m2}=AC04")  # fmt: skip
        assert "statement CLI-1: 3 entries" in out, out

        out = await _paymesh(env, "recon", "import", str(camt), "--tenant", tenant)
        assert "(CLI-1): matched 2, returned 1" in out, out
        [returned] = await breaks(api, out.split()[2])
        assert (returned["type"], returned["object_id"]) == ("returned", payout_m2)
        assert await available(api, m2) == 4_920  # paid out, then returned: once
        again = await _paymesh(env, "recon", "import", str(camt), "--tenant", tenant, code=1)
        assert "duplicate_statement" in again
        assert await available(api, m2) == 4_920
    finally:
        await api.close()
