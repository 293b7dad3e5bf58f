"""Benchmark: convert a Mistral-7B-shaped bf16 checkpoint: a plain copy, BF16, and Q4_K_M two ways.

Writes a checkpoint with Mistral-7B's exact shapes (hidden 4096, 32 layers, intermediate
14336, 32 heads, 8 KV heads, vocab 32000) in bf16, 3 shards, random values (streamed to disk,
never built in memory), plus a tiny byte-level tokenizer.json (the vocabulary is padded to
32000). Then, in one run and on the same disk, it measures:

* ``cp`` of the three shards (the baseline: the least any conversion must cost),
* the conversion step alone (to BF16, the intermediate that quantization starts from),
* the two-step path to Q4_K_M (a BF16 intermediate GGUF, then llama.cpp's quantizer),
* the direct path to Q4_K_M (``rt convert``'s default: quantized in the same pass),

each in a child process whose peak resident memory (the process and its own children) and
peak extra disk (the bytes of every file in the output folder, temporary ones included) are
sampled every 50 ms. It prints the figures and the targets (conversion within 1.5x the copy;
direct path: extra disk <= 1.05x its output, peak RSS <= 1 GB, wall time <= 0.85x the two-step
path), and checks that both paths wrote the same bytes. It asserts nothing.

    python benchmarks/bench_convert.py               # full size: ~14.5 GB checkpoint
    python benchmarks/bench_convert.py --layers 2    # a quick, scaled-down run

RSS counts file pages a process has mapped. The "anon" column (RSS minus file-backed shared
pages) is the memory the process really claims; mapped file pages are reclaimable cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
HIDDEN, FFN, HEADS, KV_HEADS, VOCAB = 4096, 14336, 32, 8, 32000
KV_DIM = HIDDEN // HEADS * KV_HEADS
CHUNK = 8 * 1024 * 1024  # elements written per numpy call
GB = 1e9


def tensor_shapes(n_layers: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for i in range(n_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (HIDDEN,),
            p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN),
            p + "self_attn.k_proj.weight": (KV_DIM, HIDDEN),
            p + "self_attn.v_proj.weight": (KV_DIM, HIDDEN),
            p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
            p + "post_attention_layernorm.weight": (HIDDEN,),
            p + "mlp.gate_proj.weight": (FFN, HIDDEN),
            p + "mlp.up_proj.weight": (FFN, HIDDEN),
            p + "mlp.down_proj.weight": (HIDDEN, FFN),
        })
    shapes["model.norm.weight"] = (HIDDEN,)
    shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    return shapes


def _pool(rng: np.random.Generator) -> np.ndarray:
    """64 MB of bf16 words drawn from N(0, 0.02); tensors are written from random windows."""
    values = (rng.standard_normal(4 * CHUNK) * 0.02).astype(np.float32)
    return (values.view(np.uint32) >> 16).astype("<u2")


def write_shard(path: Path, shapes: dict[str, tuple[int, ...]], pool: np.ndarray,
                rng: np.random.Generator) -> None:
    header, offset = {}, 0
    for name, shape in shapes.items():
        nbytes = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as fh:
        fh.write(len(encoded).to_bytes(8, "little") + encoded)
        for shape in shapes.values():
            left = int(np.prod(shape))
            while left:
                n = min(left, CHUNK)
                start = int(rng.integers(0, len(pool) - n + 1))
                pool[start:start + n].tofile(fh)
                left -= n


def tiny_tokenizer() -> dict:
    """A byte-level BPE tokenizer.json: the 256 byte symbols and a handful of merges."""
    from tokenizers import pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = [["Ġ", "t"], ["h", "e"], ["Ġt", "he"], ["i", "n"], ["Ġ", "a"]]
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    for left, right in merges:
        vocab[left + right] = len(vocab)
    special = len(vocab)
    return {
        "version": "1.0", "truncation": None, "padding": None, "normalizer": None,
        "added_tokens": [{"id": special, "content": "</s>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": merges},
    }


def write_checkpoint(folder: Path, n_layers: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pool = _pool(rng)
    names = list(tensor_shapes(n_layers).items())
    cut1, cut2 = len(names) // 3, 2 * len(names) // 3
    weight_map = {}
    for i, part in enumerate((names[:cut1], names[cut1:cut2], names[cut2:])):
        shard = f"model-{i + 1:05d}-of-00003.safetensors"
        write_shard(folder / shard, dict(part), pool, rng)
        weight_map.update({name: shard for name, _ in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    config = {
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": HIDDEN,
        "intermediate_size": FFN, "num_hidden_layers": n_layers, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB, "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-5, "rope_theta": 1000000.0, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text(json.dumps(tiny_tokenizer()))
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def _folder_bytes(folder: Path | None) -> int:
    if folder is None:
        return 0
    total = 0
    for path in folder.iterdir():
        try:
            total += path.stat().st_size
        except OSError:  # renamed or removed meanwhile
            pass
    return total


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children (and theirs), where the OS says."""
    if sys.platform == "win32":  # pragma: no cover - no getrusage there
        return 0.0
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(command: list[str], out_dir: Path | None = None) -> tuple[float, float, int, int, int]:
    """Run ``command``; return (seconds, CPU seconds, peak RSS, peak anon RSS, peak bytes in
    ``out_dir``), CPU and RSS summed over it and its children."""
    cpu_before = _children_cpu()
    start = time.perf_counter()
    process = psutil.Popen(command, cwd=ROOT)
    peak_rss = peak_anon = peak_disk = 0
    while process.poll() is None:
        peak_disk = max(peak_disk, _folder_bytes(out_dir))
        rss = anon = 0
        try:
            for proc in [process, *process.children(recursive=True)]:
                info = proc.memory_info()
                rss += info.rss
                anon += info.rss - getattr(info, "shared", 0)
        except psutil.Error:
            pass
        peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{command[:3]} failed with exit code {process.returncode}")
    cpu = _children_cpu() - cpu_before
    return seconds, cpu, peak_rss, peak_anon, max(peak_disk, _folder_bytes(out_dir))


def convert_command(source: Path, out: Path, quant: str, direct: bool = True) -> list[str]:
    code = ("import sys; from pathlib import Path; from convert.pipeline import convert_checkpoint; "
            "convert_checkpoint(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], direct=sys.argv[4] == '1')")
    return [sys.executable, "-c", code, str(source), str(out), quant, "1" if direct else "0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=32, help="transformer blocks (Mistral-7B: 32)")
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--workdir", type=Path, help="where to write (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the files afterwards")
    args = parser.parse_args()

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rt-bench-convert-", dir=args.workdir))
    try:
        run(work, args.layers, args.quant)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, n_layers: int, quant: str) -> None:
    source = work / "checkpoint"
    t0 = time.perf_counter()
    size = write_checkpoint(source, n_layers)
    print(f"checkpoint: {n_layers} layers, {size / GB:.2f} GB bf16 in 3 shards "
          f"(written in {time.perf_counter() - t0:.1f} s) at {work}")

    copy_dir = work / "copy"
    copy_dir.mkdir()
    shards = [str(p) for p in sorted(source.glob("*.safetensors"))]
    cp_s, cp_cpu, cp_rss, _, _ = measure(["cp", *shards, str(copy_dir)])
    shutil.rmtree(copy_dir)

    runs = {}
    for label, quant_, direct in (("conversion alone (bf16 -> BF16)", "BF16", True),
                                  (f"two-step to {quant}", quant, False),
                                  (f"direct to {quant}", quant, True)):
        out_dir = work / ("direct" if direct else "two-step")
        out_dir.mkdir(exist_ok=True)
        out = out_dir / f"model-{quant_}.gguf"
        runs[label] = (*measure(convert_command(source, out, quant_, direct), out_dir), out.stat().st_size)
        if quant_ == "BF16":
            out.unlink()
    two_step_out, direct_out = (work / d / f"model-{quant}.gguf" for d in ("two-step", "direct"))
    identical = _same_bytes(two_step_out, direct_out)

    print(f"\n{'step':34} {'wall s':>8} {'CPU s':>8} {'peak RSS':>10} {'anon RSS':>10} "
          f"{'extra disk':>11} {'output':>9}")
    print(f"{'cp of the 3 shards':34} {cp_s:8.1f} {cp_cpu:8.1f} {cp_rss / GB:9.2f}G {'':>10} {size / GB:10.2f}G")
    for label, (wall, cpu, rss, anon, disk, out_size) in runs.items():
        print(f"{label:34} {wall:8.1f} {cpu:8.1f} {rss / GB:9.2f}G {anon / GB:9.2f}G {disk / GB:10.2f}G "
              f"{out_size / GB:8.2f}G")
    conv_s = runs["conversion alone (bf16 -> BF16)"][0]
    two_s, two_cpu = runs[f"two-step to {quant}"][:2]
    d_s, d_cpu, d_rss, d_anon, d_disk, d_size = runs[f"direct to {quant}"]
    print(f"\nconversion / cp time: {conv_s / cp_s:.2f}x   (target <= 1.5x)")
    print(f"direct path, extra disk / output: {d_disk / d_size:.3f}x   (target <= 1.05x)")
    print(f"direct path, peak RSS: {d_rss / GB:.2f} GB, anon {d_anon / GB:.2f} GB   (target <= 1 GB)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"direct / two-step wall time: {d_s / two_s:.2f}x   (target <= 0.85x); "
          f"CPU time: {d_cpu / two_cpu:.2f}x   ({os.cpu_count()} cores, load average "
          f"{load:.1f} at the end)")
    print(f"direct and two-step files byte-identical: {identical}")


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(CHUNK), fb.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


if __name__ == "__main__":
    main()
