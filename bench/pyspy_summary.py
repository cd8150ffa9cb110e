"""Summarise a py-spy profile in its raw (collapsed stacks) format.

    py-spy record --pid PID -d 20 --nonblocking --format raw -o prof.txt [--gil]
    python bench/pyspy_summary.py prof.txt [--top 15]

Prints the functions with the most samples on top of the stack (self) and anywhere in
it (inclusive), and self samples by package (sqlalchemy, grpc, paymesh.payments, ...),
each as a share of all samples. Not run by `make bench`: a tool for reading profiles.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def _frame(text: str) -> tuple[str, str]:
    """(function, file) of one frame, "func (path/file.py:123)"."""
    m = _FRAME.match(text.strip())
    return (m["func"], m["file"]) if m else (text.strip(), "")


def _package(file: str) -> str:
    """A frame's package: "paymesh/payments/store.py" -> "paymesh.payments"."""
    parts = file.split("/")
    if parts[0] == "paymesh" and len(parts) > 2:
        return f"paymesh.{parts[1]}"
    if len(parts) == 1:
        return f"stdlib:{parts[0]}" if parts[0].endswith(".py") else parts[0]
    return parts[0]


def summarise(path: Path, top: int) -> str:
    """The report on the profile at `path`."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        func, file = frames[-1]
        self_time[f"{func} ({file})"] += n
        packages[_package(file)] += n
        for name in {f"{fn} ({fl})" for fn, fl in frames}:
            inclusive[name] += n
    out = [f"{path}: {total} samples"]
    for title, counter in (
        ("self (top of stack)", self_time),
        ("inclusive (anywhere in the stack)", inclusive),
        ("self by package", packages),
    ):
        out.append(f"\n{title}:")
        for name, n in counter.most_common(top):
            out.append(f"  {100 * n / max(total, 1):5.1f}%  {n:6}  {name}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
