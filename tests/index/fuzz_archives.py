"""Mutations of small valid archives for the archive readers' fuzz (test_fuzz_archives.py, and
benchmarks/fuzz_archives.py for long runs).

Seeds are the .docx, .xlsx, .pptx, .epub, .odt and .odp files tests/index/test_formats.py
builds in code. A case ends as text or as rt's one-line :class:`UnreadableFileError`; anything
else escaping is a traceback, a case slower than the bound a hang, and the process's peak RSS
past ``rss_bound`` a memory blow-up.
"""

from __future__ import annotations

import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.index.archive_files import RawMember, bomb_member, deflated, members_of, write_zip

_MB = 1 << 20


def seeds(folder: Path) -> dict[str, list[RawMember]]:
    """The members of one valid file of each archive format, built in ``folder``."""
    from tests.index.test_formats import make_docx, make_epub, make_odp, make_odt, make_pptx, make_xlsx

    makers = {"docx": make_docx, "xlsx": make_xlsx, "pptx": make_pptx, "epub": make_epub, "odt": make_odt,
              "odp": make_odp}
    out = {}
    for kind, make in makers.items():
        path = folder / f"seed.{kind}"
        make(path)
        out[kind] = members_of(path)
    return out


def _payload(member: RawMember) -> bytes:
    import zlib

    return zlib.decompress(member.data, -15)


def _xml_members(members: list[RawMember]) -> list[int]:
    return [i for i, m in enumerate(members) if m.name.endswith((".xml", ".xhtml", ".opf", ".rels"))] or [0]


def _with_xml(rng: random.Random, members: list[RawMember], edit: Callable[[bytes], bytes]) -> list[RawMember]:
    i = rng.choice(_xml_members(members))
    out = list(members)
    out[i] = deflated(members[i].name, edit(_payload(members[i])))
    return out


def _flip(rng: random.Random, data: bytes, count: int) -> bytes:
    buf = bytearray(data)
    for _ in range(count):
        if buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def _laughs(depth: int) -> bytes:
    entities = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, depth))
    return f'<?xml version="1.0"?><!DOCTYPE r [{entities}]><r>&a{depth - 1};</r>'.encode()


def _huge_numbers(rng: random.Random, xml: bytes) -> bytes:
    """Every number in attribute values made huge, negative or odd (levels, spans, row numbers)."""
    values = [b"99999999999", b"-1", b"0", b"1e308", b"2147483648", b"18446744073709551616", b"NaN"]
    return re.sub(rb'="(\d+)"', lambda m: b'="' + rng.choice(values) + b'"', xml)


MUTATIONS = ("flip_zip", "truncate", "declared_size", "compressed_size", "duplicate", "drop", "flip_xml",
             "deep_xml", "wide_xml", "laughs", "huge_numbers", "bomb", "lying_bomb", "many_members", "crc",
             "huge_span")


def mutate(rng: random.Random, members: list[RawMember], kind: str, target: Path) -> str:
    """Write one mutation of the archive ``members`` to ``target``; return its name."""
    mutation = rng.choice(MUTATIONS)
    out = list(members)
    i = rng.randrange(len(out))
    if mutation == "declared_size":
        out[i] = replace(out[i], declared=rng.choice([0, 1, out[i].size // 2, out[i].size * 3, 0xFFFFFFFF]))
    elif mutation == "compressed_size":  # a member cut short or running into the next one
        out[i] = replace(out[i], data=out[i].data[: rng.randrange(len(out[i].data) + 1)])
    elif mutation == "crc":
        out[i] = replace(out[i], crc=rng.getrandbits(32))
    elif mutation == "duplicate":
        j = rng.randrange(len(out))
        out.insert(rng.randrange(len(out) + 1), replace(out[j], name=out[i].name))
    elif mutation == "drop":
        del out[i]
    elif mutation == "flip_xml":
        out = _with_xml(rng, out, lambda x: _flip(rng, x, rng.randint(1, 20)))
    elif mutation == "deep_xml":
        depth = rng.choice([100, 3000, 100_000])
        out = _with_xml(rng, out, lambda x: x.replace(b"</", b"<d>" * depth + b"</d>" * depth + b"</", 1))
    elif mutation == "wide_xml":
        count = rng.choice([1000, 200_000])
        out = _with_xml(rng, out, lambda x: x.replace(b"</", b"<w/>" * count + b"</", 1))
    elif mutation == "laughs":
        j = rng.choice(_xml_members(out))
        out[j] = deflated(out[j].name, _laughs(rng.choice([3, 10])))
    elif mutation == "huge_numbers":
        out = _with_xml(rng, out, lambda x: _huge_numbers(rng, x))
    elif mutation in ("bomb", "lying_bomb"):
        j = rng.choice(_xml_members(out))
        megabytes = rng.choice([30, 300])
        out[j] = bomb_member(out[j].name, megabytes, declared=1000 if mutation == "lying_bomb" else None)
    elif mutation == "huge_span":  # a table cell spanning 10^8 columns (Word, PowerPoint)
        span = rng.choice([b"100000000", b"-5", b"0"])
        out = [deflated(m.name, _payload(m).replace(b"<w:tcPr>", b'<w:tcPr><w:gridSpan w:val="' + span + b'"/>')
                        .replace(b"<a:tc>", b'<a:tc gridSpan="' + span + b'">')) if m.name.endswith(".xml") else m
               for m in out]
    elif mutation == "many_members":
        out += [deflated(f"extra/{n}.xml", b"<x/>") for n in range(rng.choice([100, 12_000]))]
    write_zip(target, out)
    if mutation == "flip_zip":
        target.write_bytes(_flip(rng, target.read_bytes(), rng.randint(1, 8)))
    elif mutation == "truncate":
        data = target.read_bytes()
        target.write_bytes(data[: rng.randrange(len(data))])
    return mutation


def peak_rss() -> int:
    """This process's peak resident set, in bytes (0 on Windows, which has no ``resource``).

    On Linux, VmHWM of /proc/self/status: ``ru_maxrss`` carries over through exec, so a fuzzer
    started by a large process (pytest with models loaded: 4.2 GB measured) would inherit its
    parent's peak as its own from the first case."""
    if sys.platform == "win32":
        return 0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak if sys.platform == "darwin" else peak * 1024


def read_archive(path: Path) -> int:
    """Read ``path`` with rt's reader for its suffix; the number of characters of text."""
    from runtime.index.readers import reader_for

    with open(path, "rb") as handle:
        return sum(len(s.text) for s in reader_for(path).read(handle, None, 4000))


@dataclass
class ArchiveFuzzReport:
    """What a run saw: outcomes by class, findings with their mutation, the slowest case."""

    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    by_mutation: Counter[str] = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    slowest: tuple[float, str] = (0.0, "")
    rss_reported: bool = False

    def record(self, name: str, path: Path, bound_s: float, rss_bound: int) -> None:
        from runtime.index.readers import UnreadableFileError

        self.cases += 1
        self.by_mutation[name.split("#")[0]] += 1
        start = time.perf_counter()
        try:
            read_archive(path)
            outcome = "text"
        except UnreadableFileError as exc:
            outcome = "skipped"
            reason = str(exc)
            self.reasons[re.sub(r"\(.*", "", reason)[:60].strip()] += 1
            if "\n" in reason or len(reason) > 300:
                self.findings.append(f"{name}: a skip reason that is not one short line: {reason[:300]!r}")
        except Exception as exc:  # noqa: BLE001 - the point: anything else is a finding
            outcome = f"traceback:{type(exc).__name__}"
            self.findings.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
        elapsed = time.perf_counter() - start
        if elapsed > self.slowest[0]:
            self.slowest = (elapsed, name)
        if elapsed > bound_s:
            self.findings.append(f"{name}: took {elapsed:.1f} s (bound {bound_s:.0f} s)")
        if peak_rss() > rss_bound and not self.rss_reported:  # once: the peak never falls again
            self.findings.append(f"{name}: peak RSS {peak_rss() / 1e9:.2f} GB (bound {rss_bound / 1e9:.2f} GB)")
            self.rss_reported = True
        self.outcomes[outcome] += 1

    def summary(self) -> str:
        return (f"{self.cases} cases, {len(self.findings)} findings, slowest {self.slowest[0]:.2f} s "
                f"({self.slowest[1]}); outcomes {dict(self.outcomes.most_common())}")


def fuzz_archives(workdir: Path, cases: int, seed: int, kinds: tuple[str, ...] | None = None,
                  bound_s: float = 20.0, rss_bound: int = 1_000_000_000,
                  budget_s: float = 0.0, before_case: Callable[[], object] | None = None) -> ArchiveFuzzReport:
    """``cases`` mutated archives through rt's readers, the formats taken in turn (``before_case``
    is called before each, e.g. to rearm a watchdog)."""
    sources = seeds(workdir)
    names = [k for k in sources if kinds is None or k in kinds]
    rng, report = random.Random(seed), ArchiveFuzzReport()
    start = time.perf_counter()
    for n in range(cases):
        if budget_s and time.perf_counter() - start > budget_s:
            break
        if before_case is not None:
            before_case()
        kind = names[n % len(names)]
        target = workdir / f"fuzz.{kind}"
        name = f"{kind}/{mutate(rng, sources[kind], kind, target)}#{n}"
        report.record(name, target, bound_s, rss_bound)
    return report
