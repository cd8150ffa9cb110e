"""Debian packages the tests need, installed with apt when missing (CI runs as root on a
fresh machine), one install at a time: the suite runs on several workers, and two apt-get
processes at once fail on dpkg's lock."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Mapping

__all__ = ["ensure_packages"]

LOCK = "/tmp/paymesh-tests-apt.lock"


def ensure_packages(tools: Mapping[str, str]) -> None:
    """Make each tool of `tools` (tool -> the Debian package holding it) be on PATH."""
    if all(shutil.which(t) for t in tools):
        return
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing them now
        missing = sorted({pkg for tool, pkg in tools.items() if not shutil.which(tool)})
        if not missing:
            return
        assert os.geteuid() == 0, f"{missing} missing and not root: apt-get install -y {missing}"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        wait = ["-o", "DPkg::Lock::Timeout=600"]
        for cmd in (["apt-get", *wait, "update"], ["apt-get", *wait, "install", "-y", *missing]):
            subprocess.run(cmd, check=True, env=env, timeout=900, capture_output=True)
    for tool, pkg in tools.items():
        assert shutil.which(tool), f"apt-get install {pkg} left no {tool} on PATH"
