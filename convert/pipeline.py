"""Checkpoint folder -> GGUF file: the whole conversion, crash-safe and streaming.

Steps: refuse pickle checkpoints, read config.json, pick the architecture converter, read every
safetensors header (no data), read the tokenizer, check free disk space, stream the tensors
into a GGUF under a temporary name, and rename the result to its final name. Quantized types
are written in the same pass by ggml's own quantizers (convert/direct_quant.py); when the installed
libggml lacks them, a float GGUF is written first and llama.cpp's quantizer (in a child
process) turns it into the final file. Ctrl-C or a kill leaves nothing under the
final name, and the next run removes the temporary files an interrupted run left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from convert import quant_rules
from convert.arch import architecture_for
from convert.arch.base import Architecture
from convert.config import DEFAULT_QUANT, PICKLE_SUFFIXES, QUANT_TYPES, check_quant  # noqa: F401 (QUANT_TYPES: public here too)
from convert.direct_quant import nbytes_of, write_direct
from convert.ggml_quant import Ggml, GgmlUnavailableError, load_ggml
from convert.quantize import BITS_PER_WEIGHT, QUANTIZED_TYPES, quantize_gguf
from convert.vocab import Vocab, add_vocab, load_vocab
from convert.writer import FILE_TYPES, FLOAT_TYPES, PlannedTensor, output_type, write_gguf
from runtime import fsutil
from runtime.diskfull import disk_full_errors
from runtime.errors import ConvertError
from runtime.models.safetensors import NUMPY_DTYPES, Checkpoint

logger = logging.getLogger(__name__)

# Header, metadata and vocabulary of the GGUF, on top of the tensor bytes: a generous bound
# per token for its text, type, score and merge (a 150k-token vocabulary takes about 10 MB).
_METADATA_BASE, _METADATA_PER_TOKEN = 1_000_000, 200


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion produced."""

    path: Path
    architecture: str     # GGUF architecture name, e.g. "llama", "qwen2"
    n_params: int
    quantization: str     # one of QUANT_TYPES
    size: int             # bytes


def convert_checkpoint(
    source: Path,
    out: Path,
    quant: str = DEFAULT_QUANT,
    *,
    name: str | None = None,
    progress: bool = False,
    direct: bool = True,
) -> ConvertResult:
    """Convert the safetensors checkpoint folder ``source`` into the GGUF file ``out``.

    ``quant`` is one of :data:`QUANT_TYPES`. All are written in one pass, the quantized types
    (those quant_rules has rules for) byte-identical to llama.cpp's quantizer run on a
    lossless float GGUF. ``direct=False``, or a
    libggml without the quantizer functions, takes the two-step path: an intermediate F16/BF16
    GGUF beside ``out`` that llama.cpp quantizes. ``name`` goes into the GGUF's
    ``general.name`` (default: the folder's name). ``progress`` shows tqdm bars on stderr.
    Raises ConvertError (and subclasses), InsufficientDiskError, FileInUseError, PathTooLongError.
    """
    source, out = Path(source), Path(out)
    quant = check_quant(quant)
    fsutil.check_target(out)  # a path too long, or a GGUF a running rt holds: say so before the work
    config = _read_config(source)
    arch = architecture_for(config)
    checkpoint = Checkpoint.open(source)
    ggml = _direct_quantizer() if direct and quant in quant_rules.DEFAULT_TYPES else None
    if ggml is not None:
        return _convert_direct(source, out, quant, arch, checkpoint, ggml, name or source.name, progress)
    float_type = FLOAT_TYPES[quant] if quant in FLOAT_TYPES else _intermediate_type(checkpoint)
    plan = plan_tensors(arch, checkpoint, float_type)
    vocab = load_vocab(source, _embedding_rows(plan))
    n_params = sum(math.prod(t.shape) for t in plan if t.source is not None)

    _sweep_leftovers(out)
    _preflight(source, out, plan, quant, _METADATA_BASE + _METADATA_PER_TOKEN * len(vocab))
    out.parent.mkdir(parents=True, exist_ok=True)

    def metadata(writer: gguf.GGUFWriter) -> None:
        _add_metadata(writer, arch, vocab, source, name or source.name, float_type)

    what = f"converting {source.name} to {quant}"
    metadata_size = _METADATA_BASE + _METADATA_PER_TOKEN * len(vocab)
    if quant in FLOAT_TYPES:
        expected = _estimated_output(plan, quant, metadata_size)
        with fsutil.atomic_path(out) as tmp, disk_full_errors(tmp, what, expected=expected):
            write_gguf(tmp, arch.gguf_arch_name, metadata, plan, progress=progress)
    else:
        intermediate = fsutil.temp_path_for(out.with_name(f"{out.stem}.intermediate.gguf"))
        try:
            with disk_full_errors(intermediate, f"{what} (its float intermediate)",
                                  expected=sum(t.nbytes for t in plan) + metadata_size):
                write_gguf(intermediate, arch.gguf_arch_name, metadata, plan, progress=progress)
            with fsutil.atomic_path(out) as tmp, _quantize_bar(progress, quant) as on_progress:
                quantize_gguf(intermediate, tmp, quant, on_progress=on_progress)
        finally:
            with contextlib.suppress(OSError):
                intermediate.unlink()
    logger.info("wrote %s (%s, %d parameters)", out, quant, n_params)
    return ConvertResult(out, arch.gguf_arch_name, n_params, quant, out.stat().st_size)


def _direct_quantizer() -> Ggml | None:
    try:
        return load_ggml()
    except GgmlUnavailableError as exc:
        logger.warning("quantizing in two steps (an intermediate float GGUF first): %s", exc)
        return None


def _lossless_type(checkpoint: Checkpoint) -> gguf.GGMLQuantizationType:
    """The float type that holds the checkpoint's values exactly (its largest tensor's)."""
    largest = max(checkpoint.tensors.values(), key=lambda ref: ref.nbytes)
    return FLOAT_TYPES.get(largest.dtype, FLOAT_TYPES["F32"])


def direct_plan(arch: Architecture, checkpoint: Checkpoint, quant: str) -> list[PlannedTensor]:
    """The tensors of a ``quant`` file in llama.cpp's order, with the types its quantizer picks."""
    stored = _lossless_type(checkpoint)
    plan = {t.name: t for t in plan_tensors(arch, checkpoint, stored)}
    config = arch.config
    n_head = int(config.get("num_attention_heads") or 1)
    facts = quant_rules.ModelFacts(arch.gguf_arch_name, int(config.get("num_hidden_layers") or 0),
                                   n_head, int(config.get("num_key_value_heads") or n_head))
    types = quant_rules.choose_types(quant, {n: t.shape for n, t in plan.items()}, facts, stored)
    return [dataclasses.replace(plan[n], out_type=types[n]) for n in quant_rules.llama_order(plan)]


def _convert_direct(source: Path, out: Path, quant: str, arch: Architecture, checkpoint: Checkpoint,
                    ggml: Ggml, name: str, progress: bool) -> ConvertResult:
    plan = direct_plan(arch, checkpoint, quant)
    vocab = load_vocab(source, _embedding_rows(plan))
    n_params = sum(math.prod(t.shape) for t in plan if t.source is not None)
    size = sum(nbytes_of(t.out_type, t.shape) for t in plan)
    metadata_size = _METADATA_BASE + _METADATA_PER_TOKEN * len(vocab)

    _sweep_leftovers(out)
    what = f"converting {source.name} to {quant} (about {fsutil.human_bytes(size + metadata_size)})"
    fsutil.ensure_free_space(out.parent, size + metadata_size, what)
    out.parent.mkdir(parents=True, exist_ok=True)

    def metadata(writer: gguf.GGUFWriter) -> None:
        _add_metadata(writer, arch, vocab, source, name, None, file_type=QUANTIZED_TYPES[quant])

    with (fsutil.atomic_path(out) as tmp, _tensor_bar(progress, quant) as on_tensor,
          disk_full_errors(tmp, f"converting {source.name} to {quant}", expected=size + metadata_size)):
        write_direct(tmp, arch.gguf_arch_name, metadata, plan, _lossless_type(checkpoint), ggml,
                     on_tensor=on_tensor)
    logger.info("wrote %s (%s, %d parameters, in one pass)", out, quant, n_params)
    return ConvertResult(out, arch.gguf_arch_name, n_params, quant, out.stat().st_size)


def _read_config(source: Path) -> Mapping[str, Any]:
    if not source.is_dir():
        raise ConvertError(f"{source} is not a folder", hint="pass the folder holding config.json and the weights")
    _refuse_pickle(source)
    path = source / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConvertError(f"no config.json in {source}", hint="download it with the weights") from None
    except ValueError as exc:
        raise ConvertError(f"config.json in {source} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ConvertError(f"config.json in {source} is not a JSON object")
    return config


def _refuse_pickle(source: Path) -> None:
    if any(source.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in source.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ConvertError(
            f"{source} holds only pickle weights ({', '.join(pickles[:3])}); rt does not load "
            "them: unpickling can run arbitrary code from the file, and a pickle must be "
            "loaded whole into memory",
            hint="download the model's safetensors or GGUF version, or convert it on a machine "
            "that can with transformers: model.save_pretrained(folder, safe_serialization=True)",
        )


def _intermediate_type(checkpoint: Checkpoint) -> gguf.GGMLQuantizationType:
    """BF16 for bf16 checkpoints (a byte copy), else F16: what llama.cpp then quantizes."""
    largest = max(checkpoint.tensors.values(), key=lambda ref: ref.nbytes)
    return FLOAT_TYPES["BF16"] if largest.dtype == "BF16" else FLOAT_TYPES["F16"]


def plan_tensors(
    arch: Architecture, checkpoint: Checkpoint, float_type: gguf.GGMLQuantizationType
) -> list[PlannedTensor]:
    """Every output tensor in writing order, with its GGUF name, type and source."""
    plan = []
    for hf_name in sorted(checkpoint.tensors, key=_natural_key):
        gguf_name = arch.gguf_name(hf_name)
        if gguf_name is None:
            continue
        ref = checkpoint[hf_name]
        if ref.dtype not in NUMPY_DTYPES:
            raise ConvertError(
                f"tensor {hf_name!r} is {ref.dtype}; rt converts F32, F16 and BF16 weights",
                hint="use the model's unquantized (float) checkpoint",
            )
        transform = None
        if arch.transforms(gguf_name):
            transform = functools.partial(arch.transform, gguf_name)
        plan.append(PlannedTensor(gguf_name, ref.shape, output_type(ref.shape, float_type),
                                  source=ref, transform=transform))
    for gguf_name, data in arch.extra_tensors():
        plan.append(PlannedTensor(gguf_name, data.shape, output_type(data.shape, float_type), data=data))
    _check_complete(arch, plan)
    return plan


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in name.split(".")]


def _check_complete(arch: Architecture, plan: Sequence[PlannedTensor]) -> None:
    names = {t.name for t in plan}
    n_layer = int(arch.config.get("num_hidden_layers") or 0)
    required = ["token_embd.weight", "output_norm.weight"] + [
        f"blk.{i}.{part}.weight" for i in range(n_layer)
        for part in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                     "ffn_gate", "ffn_up", "ffn_down")
    ]
    missing = [n for n in required if n not in names]
    if missing:
        raise ConvertError(
            f"the checkpoint lacks {len(missing)} of the {len(required)} tensors a "
            f"{n_layer}-layer {arch.gguf_arch_name} model needs (first: {missing[0]})",
            hint="a shard is missing or the download is incomplete",
        )


def _embedding_rows(plan: Sequence[PlannedTensor]) -> int:
    return next(t.shape[0] for t in plan if t.name == "token_embd.weight")


def _estimated_output(plan: Sequence[PlannedTensor], quant: str, metadata: int) -> int:
    if quant in FLOAT_TYPES:
        return sum(t.nbytes for t in plan) + metadata
    matrices = sum(math.prod(t.shape) for t in plan if len(t.shape) > 1)
    vectors = sum(t.nbytes for t in plan if len(t.shape) <= 1)
    # K-quant mixes keep some tensors at higher precision: allow 5 % on the average.
    return int(matrices * BITS_PER_WEIGHT[quant] / 8 * 1.05) + vectors + metadata


def _preflight(source: Path, out: Path, plan: Sequence[PlannedTensor], quant: str, metadata: int) -> None:
    final = _estimated_output(plan, quant, metadata)
    if quant in FLOAT_TYPES:
        what = f"converting {source.name} to {quant} (about {fsutil.human_bytes(final)})"
        fsutil.ensure_free_space(out.parent, final, what)
        return
    intermediate = sum(t.nbytes for t in plan) + metadata
    what = (f"converting {source.name} to {quant} ({fsutil.human_bytes(intermediate)} "
            f"intermediate + about {fsutil.human_bytes(final)} output)")
    fsutil.ensure_free_space(out.parent, intermediate + final, what)


def _sweep_leftovers(out: Path) -> None:
    """Remove temporary files that dead processes left beside ``out`` (never a live run's)."""
    for leftover in fsutil.sweep_temp_files(out.parent):
        logger.info("removed %s, left by an interrupted run", leftover.name)


def _add_metadata(writer: gguf.GGUFWriter, arch: Architecture, vocab: Vocab, source: Path,
                  name: str, float_type: gguf.GGMLQuantizationType | None, *,
                  file_type: int | None = None) -> None:
    """The GGUF's key-value pairs. A quantized ``file_type`` (a llama_ftype number) goes last,
    after the quantization version, where llama.cpp's quantizer puts both when it sets them."""
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    arch.add_metadata(writer, len(vocab))
    if float_type is not None:
        writer.add_file_type(FILE_TYPES[float_type])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_vocab(writer, vocab, source)
    if file_type is not None:
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_file_type(file_type)


@contextlib.contextmanager
def _tensor_bar(enabled: bool, quant: str) -> Iterator[Callable[[str, int, int], None] | None]:
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(unit="tensor", desc=f"converting and quantizing to {quant}", leave=False)

    def update(name: str, done: int, total: int) -> None:
        bar.total = total
        bar.set_postfix_str(name, refresh=False)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


@contextlib.contextmanager
def _quantize_bar(enabled: bool, quant: str) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(unit="tensor", desc=f"quantizing to {quant}", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
