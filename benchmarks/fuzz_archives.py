"""Fuzz of rt's archive readers (.docx .xlsx .pptx .epub .odt .odp): mutated small valid files.

Run: ``python benchmarks/fuzz_archives.py [--cases 5000] [--seed 0] [--only docx,xlsx]
[--bound-s 20] [--rss-gb 1.0] [--budget-s 0]``

Seeds are built in code (tests/index/test_formats.py); mutations (tests/index/fuzz_archives.py):
bytes flipped in the zip or in a member's XML, truncation, false declared and compressed sizes
and CRCs, duplicated and dropped members, 12,000 members, deep and wide XML, "billion laughs"
entities, huge or negative numbers in attributes (outline levels, row numbers, spans), and bomb
members of 30-300 MB (their sizes declared or lying). A finding is anything other than text or
rt's one-line skip escaping a reader, a case slower than ``--bound-s``, a skip reason that is
not one short line, or this process's peak RSS past ``--rss-gb``. A true hang ends the run with
a stack (faulthandler). Exit status 1 when there are findings.
"""

from __future__ import annotations

import argparse
import faulthandler
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.index.fuzz_archives import fuzz_archives, peak_rss  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="formats to fuzz, comma-separated (default: all)")
    parser.add_argument("--bound-s", type=float, default=20.0, help="per-case time bound (a hang beyond it)")
    parser.add_argument("--rss-gb", type=float, default=1.0, help="peak RSS bound of this process")
    parser.add_argument("--budget-s", type=float, default=0.0, help="stop after this long (0: never)")
    args = parser.parse_args()
    watchdog = max(120.0, 6 * args.bound_s)
    kinds = tuple(args.only.split(",")) if args.only else None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rt-fuzz-archives-") as tmp:
        report = fuzz_archives(Path(tmp), args.cases, args.seed, kinds, args.bound_s, int(args.rss_gb * 1e9),
                               args.budget_s, lambda: faulthandler.dump_traceback_later(watchdog, exit=True))
    faulthandler.cancel_dump_traceback_later()
    elapsed = time.perf_counter() - start
    print(f"archives: {report.summary()}; {elapsed:.0f} s ({elapsed / max(report.cases, 1) * 1000:.0f} ms/case), "
          f"peak RSS {peak_rss() / 1e9:.2f} GB")
    print(f"archives: cases by mutation {dict(sorted(report.by_mutation.items()))}")
    print(f"archives: skip reasons {dict(report.reasons.most_common(12))}")
    for line in report.findings[:40]:
        print(f"archives: FINDING {line}")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
