"""Header fuzzing for rt's file readers: mutated copies of real GGUF and safetensors headers.

Only the header bytes are read into memory. A mutated GGUF is written as its header followed by
a sparse extension to the original size (so that a header that still parses reaches every later
check without copying the tensor data); a truncation is written as is. Each case runs the reader
in this process and is classed as ``ok`` (accepted), the name of the :class:`RtError` subclass it
raised, ``traceback:<type>`` (any other exception: a bug) or, on top of those, counted as a hang
when it takes longer than the per-case bound.
"""

from __future__ import annotations

import json
import random
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gguf

from runtime.errors import RtError

_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
BOUNDARY = {
    1: (0, 1, 0x7F, 0x80, 0xFF),
    2: (0, 1, 0x7FFF, 0x8000, 0xFFFF),
    4: (0, 1, 2**31 - 1, 2**31, 2**32 - 1),
    8: (0, 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63, 2**64 - 1),
}
# The counts rt sizes things by (runtime.models.gguf_file.COUNT_BOUNDS), by key suffix.
MODEL_COUNTS = ("block_count", "context_length", "embedding_length", "feed_forward_length", "vocab_size",
                "attention.head_count", "attention.head_count_kv", "attention.key_length",
                "attention.value_length")


@dataclass(frozen=True)
class Field:
    """A number in the header: where it is, its width and what it is ("count", "type", "value", ...)."""

    offset: int
    size: int
    kind: str
    key: str = ""


@dataclass
class GGUFLayout:
    """The structure of a real GGUF header, found by walking it once."""

    data: bytes
    fields: list[Field] = field(default_factory=list)
    kv_spans: list[tuple[int, int]] = field(default_factory=list)
    tokens: list[tuple[int, int]] = field(default_factory=list)  # (offset of the bytes, length)
    header_end: int = 0


def gguf_layout(path: Path) -> GGUFLayout:
    """Read the header of the real GGUF at ``path`` (header bytes only) and locate its fields."""
    with open(path, "rb") as fh:
        data = fh.read(16 << 20)
    layout = GGUFLayout(data)
    add = layout.fields.append
    u32 = lambda at: struct.unpack_from("<I", data, at)[0]  # noqa: E731
    u64 = lambda at: struct.unpack_from("<Q", data, at)[0]  # noqa: E731
    add(Field(8, 8, "count", "n_tensors"))
    add(Field(16, 8, "count", "n_kv"))
    n_tensors, n_kv, pos = u64(8), u64(16), 24
    for _ in range(n_kv):
        start = pos
        add(Field(pos, 8, "length", "key"))
        key = data[pos + 8 : pos + 8 + u64(pos)].decode()
        pos += 8 + u64(pos)
        add(Field(pos, 4, "type", key))
        vtype, pos = u32(pos), pos + 4
        if vtype == _STRING:
            add(Field(pos, 8, "length", key))
            pos += 8 + u64(pos)
        elif vtype == _ARRAY:
            add(Field(pos, 4, "type", key + "[]"))
            add(Field(pos + 4, 8, "count", key + "[]"))
            etype, count, pos = u32(pos), u64(pos + 4), pos + 12
            for index in range(count):
                if etype == _STRING:
                    if index < 3:
                        add(Field(pos, 8, "length", f"{key}[{index}]"))
                    if key == gguf.Keys.Tokenizer.LIST:
                        layout.tokens.append((pos + 8, u64(pos)))
                    pos += 8 + u64(pos)
                else:
                    if index < 3:
                        add(Field(pos, _SCALAR_SIZES[etype], "value", f"{key}[{index}]"))
                    pos += _SCALAR_SIZES[etype]
        else:
            add(Field(pos, _SCALAR_SIZES[vtype], "value", key))
            pos += _SCALAR_SIZES[vtype]
        layout.kv_spans.append((start, pos))
    for _ in range(n_tensors):
        add(Field(pos, 8, "length", "tensor name"))
        pos += 8 + u64(pos)
        add(Field(pos, 4, "count", "n_dims"))
        n_dims, pos = u32(pos), pos + 4
        for _ in range(n_dims):
            add(Field(pos, 8, "dim"))
            pos += 8
        add(Field(pos, 4, "type", "tensor type"))
        add(Field(pos + 4, 8, "value", "tensor offset"))
        pos += 12
    layout.header_end = pos
    return layout


def _put(data: bytearray, f: Field, value: int) -> None:
    data[f.offset : f.offset + f.size] = (value % (1 << (8 * f.size))).to_bytes(f.size, "little")


def _pick(rng: random.Random, layout: GGUFLayout, kinds: tuple[str, ...] = ()) -> Field:
    fields = [f for f in layout.fields if not kinds or f.kind in kinds]
    # tensor entries outnumber KV fields 8:1 in a real file; draw both halves equally often
    kv = [f for f in fields if f.key not in ("tensor name", "n_dims", "tensor type", "tensor offset", "")]
    return rng.choice(kv if kv and rng.random() < 0.5 else fields)


Mutation = Callable[[random.Random, GGUFLayout, bytearray], "bytearray | None"]


def _bit_flip(rng: random.Random, layout: GGUFLayout, data: bytearray) -> None:
    for _ in range(rng.choice((1, 1, 2, 8))):
        f = _pick(rng, layout)
        at = f.offset + rng.randrange(f.size) if rng.random() < 0.7 else rng.randrange(layout.header_end)
        data[at] ^= 1 << rng.randrange(8)


def _boundary(rng: random.Random, layout: GGUFLayout, data: bytearray) -> None:
    f = _pick(rng, layout)
    _put(data, f, rng.choice(BOUNDARY[f.size]))


def _byte_run(rng: random.Random, layout: GGUFLayout, data: bytearray) -> None:
    at, n = rng.randrange(layout.header_end), rng.randint(1, 16)
    data[at : at + n] = bytes([rng.choice((0, 0xFF, 0x80, 0x7F))]) * n


def _huge_count(rng: random.Random, layout: GGUFLayout, data: bytearray) -> None:
    f = _pick(rng, layout, ("count", "length", "dim"))
    _put(data, f, rng.choice((2**31, 2**32 - 1, 2**62, 2**63, 2**64 - 1, 10**9, 1 << 24)))


def _type_tag(rng: random.Random, layout: GGUFLayout, data: bytearray) -> None:
    _put(data, _pick(rng, layout, ("type",)), rng.choice((*range(14), 39, 40, 255, 2**31, 2**32 - 1)))


def _model_count(rng: random.Random, layout: GGUFLayout, data: bytearray) -> None:
    fields = [f for f in layout.fields if f.key.endswith(MODEL_COUNTS) and f.kind in ("value", "type")]
    f = rng.choice(fields)
    if f.kind == "type":
        _put(data, f, rng.choice((0, 1, 2, 3, 6, 7, 10, 11, 12)))
    else:
        _put(data, f, rng.choice(BOUNDARY[f.size]))


def _duplicate_kv(rng: random.Random, layout: GGUFLayout, data: bytearray) -> bytearray:
    start, end = rng.choice(layout.kv_spans)
    at = rng.choice((end, layout.kv_spans[-1][1], layout.kv_spans[0][0]))
    n_kv = struct.unpack_from("<Q", data, 16)[0]
    out = data[:at] + data[start:end] + data[at:]
    struct.pack_into("<Q", out, 16, n_kv + 1)
    return out


def _duplicate_token(rng: random.Random, layout: GGUFLayout, data: bytearray) -> None:
    at, n = rng.choice(layout.tokens)
    same = [t for t in layout.tokens[:20000] if t[1] == n and t[0] != at]
    if same:
        source = rng.choice(same)[0]
        data[at : at + n] = data[source : source + n]


def _truncate(rng: random.Random, layout: GGUFLayout, data: bytearray) -> bytearray:
    return data[: rng.randrange(layout.header_end)]


GGUF_MUTATIONS: dict[str, Mutation] = {
    "bit-flip": _bit_flip, "boundary": _boundary, "byte-run": _byte_run, "huge-count": _huge_count,
    "type-tag": _type_tag, "model-count": _model_count, "duplicate-kv": _duplicate_kv,
    "duplicate-token": _duplicate_token, "truncate": _truncate,
}


def mutate_gguf(rng: random.Random, layout: GGUFLayout, size: int, target: Path) -> str:
    """Write one mutated copy of ``layout``'s file to ``target``; returns the mutation's name."""
    name = rng.choice(list(GGUF_MUTATIONS))
    data = bytearray(layout.data[: layout.header_end + 64])
    result = GGUF_MUTATIONS[name](rng, layout, data)
    body = data if result is None else result
    with open(target, "wb") as fh:
        fh.write(body)
        if name != "truncate":  # the rest of the file: sparse, never read
            fh.truncate(size + len(body) - len(data) if result is not None else size)
    return name


@dataclass
class FuzzReport:
    """What a fuzz run saw: outcomes by class, tracebacks with their mutation, the slowest case."""

    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    by_mutation: Counter[str] = field(default_factory=Counter)
    tracebacks: list[str] = field(default_factory=list)
    hangs: int = 0
    slowest: float = 0.0

    def record(self, mutation: str, run: Callable[[], object], bound_s: float) -> None:
        self.cases += 1
        self.by_mutation[mutation] += 1
        start = time.perf_counter()
        try:
            run()
            outcome = "ok"
        except RtError as exc:
            outcome = type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - the point: anything else is a finding
            outcome = f"traceback:{type(exc).__name__}"
            self.tracebacks.append(f"{mutation}: {type(exc).__name__}: {str(exc)[:200]}")
        elapsed = time.perf_counter() - start
        self.slowest = max(self.slowest, elapsed)
        self.hangs += elapsed > bound_s
        self.outcomes[outcome] += 1

    def summary(self) -> str:
        return (f"{self.cases} cases, {len(self.tracebacks)} tracebacks, {self.hangs} hangs, slowest "
                f"{self.slowest:.3f} s; outcomes {dict(self.outcomes.most_common())}")


def fuzz_gguf(source: Path, cases: int, seed: int, workdir: Path, bound_s: float = 5.0) -> FuzzReport:
    """Run ``cases`` mutated headers of ``source`` through :func:`inspect_gguf`."""
    from runtime.models.gguf_file import inspect_gguf

    layout, size = gguf_layout(source), source.stat().st_size
    rng, report, target = random.Random(seed), FuzzReport(), workdir / f"fuzz-{source.stem}.gguf"
    for _ in range(cases):
        mutation = mutate_gguf(rng, layout, size, target)
        report.record(mutation, lambda: inspect_gguf(target), bound_s)
    return report


# --- safetensors ---------------------------------------------------------------------------------

def safetensors_header(path: Path) -> tuple[bytes, int]:
    """The JSON header of a real safetensors file (header bytes only) and the file's size."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        return fh.read(n), path.stat().st_size


_HOSTILE_VALUES: tuple[object, ...] = (
    0, -1, 2**31, 2**63, 2**64, 10**30, 1.5, float("inf"), "F32", "", None, True, [], {}, [[1]], [-1],
    [2**64, 2**64], [0, 2**63], [1, 0], [0.5, 1], ["0", "1"], [None], [0, 0, 0],
)


def _json_mutation(rng: random.Random, header: dict[str, object]) -> str:
    names = [k for k in header if k != "__metadata__"]
    entry = header[rng.choice(names)]
    choice = rng.randrange(6)
    if choice == 0 and isinstance(entry, dict):
        entry[rng.choice(("dtype", "shape", "data_offsets"))] = rng.choice(_HOSTILE_VALUES)
    elif choice == 1 and isinstance(entry, dict):
        entry.pop(rng.choice(("dtype", "shape", "data_offsets")), None)
    elif choice == 2 and isinstance(entry, dict):
        entry["shape"] = [rng.choice((0, 1, 2**20, 2**40, 2**63)) for _ in range(rng.randint(0, 9))]
    elif choice == 3:
        header[rng.choice(names)] = rng.choice(_HOSTILE_VALUES)
    elif choice == 4 and isinstance(entry, dict):
        offsets = entry.get("data_offsets")
        if isinstance(offsets, list) and len(offsets) == 2:
            delta = rng.choice((1, -1, 2**32, -(2**32), 2**63))
            entry["data_offsets"] = [offsets[0] + delta, offsets[1] + delta]
    else:
        header["__metadata__"] = rng.choice(({"format": "pt"}, [1], "x", {"a": [{}] * 3}))
    return json.dumps(header)


def mutate_safetensors(rng: random.Random, header: bytes, size: int, target: Path) -> str:
    """Write one mutated copy of a safetensors file with ``header`` to ``target``; the mutation's name."""
    name = rng.choice(("json", "json", "bit-flip", "byte-run", "length", "truncate", "nesting", "text"))
    body, length = bytearray(header), None
    if name == "json":
        body = bytearray(_json_mutation(rng, json.loads(header)).encode())
    elif name == "bit-flip":
        for _ in range(rng.choice((1, 2, 8))):
            body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
    elif name == "byte-run":
        at = rng.randrange(len(body))
        body[at : at + rng.randint(1, 16)] = bytes([rng.choice((0, 0xFF, 0x22, 0x5B))]) * rng.randint(1, 16)
    elif name == "length":
        length = rng.choice((0, 1, len(body) - 1, len(body) + 1, 2**31, 2**63, 2**64 - 1, size, size - 8))
    elif name == "nesting":
        depth = rng.choice((100, 10_000, 200_000))
        body = bytearray(rng.choice((b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth)))
    elif name == "text":
        body = bytearray(rng.choice((b'{"a": ' + b"9" * 5000 + b"}", b"\xff\xfe{}", b'{"a": NaN}', b"[]", b"null",
                                     b'{"a": {"dtype": "F32", "shape": [1e400], "data_offsets": [0, 4]}}')))
    with open(target, "wb") as fh:
        fh.write(struct.pack("<Q", len(body) if length is None else length) + body)
        if name == "truncate":
            fh.truncate(rng.randrange(8 + len(body)))
        else:
            fh.truncate(max(size, 8 + len(body)))
    return name


def fuzz_safetensors(source: Path, cases: int, seed: int, workdir: Path, bound_s: float = 5.0) -> FuzzReport:
    """Run ``cases`` mutated headers of ``source`` through :func:`runtime.models.safetensors.read_header`."""
    from runtime.models.safetensors import read_header

    header, size = safetensors_header(source)
    rng, report, target = random.Random(seed), FuzzReport(), workdir / "fuzz.safetensors"
    for _ in range(cases):
        mutation = mutate_safetensors(rng, header, size, target)
        report.record(mutation, lambda: read_header(target), bound_s)
    return report
