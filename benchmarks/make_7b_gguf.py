"""Make the Mistral-7B-shaped GGUF the 7B benchmarks run on, once, and keep only the GGUF.

Writes bench_convert's random bf16 checkpoint (Mistral-7B's exact shapes, ~14.5 GB), converts
it with rt's direct conversion (``convert_checkpoint``, quantized in the same pass), moves the
GGUF to ``--out`` and deletes the checkpoint. The weights are random: the model's answers are
noise, but the time llama.cpp spends on its prompt and its tokens is that of a real 7B.

bench_convert's byte-level tokenizer has ~260 tokens, so a RAG prompt would take ~4x the
tokens of a real 7B's. Here a 32,000-token byte-level BPE is trained on the contexts of the
eval data at hand (benchmarks/eval_data.py: SQuAD-Shifts' Reddit posts by default, SQuAD dev
with RT_EVAL_DATA=squad where a copy is cached; 2 s) and a Mistral-style ``[INST]`` chat template is added,
so ``rt ask`` builds the same prompts, at about a real tokenizer's tokens per character
(3.1 characters per token on docs/memory.md), as it would for Mistral 7B Instruct.

    python benchmarks/make_7b_gguf.py                       # ~/.cache/rt-bench/mistral7b-shape-q4_k_m.gguf
    python benchmarks/make_7b_gguf.py --layers 2 --out /tmp/m2.gguf   # a quick, scaled-down one
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_convert import GB, VOCAB, write_checkpoint  # noqa: E402

DEFAULT_OUT = Path.home() / ".cache" / "rt-bench" / "mistral7b-shape-q4_k_m.gguf"
# Mistral 7B Instruct's turn markers; a system message opens the first user turn
CHAT_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = m['content'] + '\\n\\n' %}"
    "{% elif m['role'] == 'user' %}[INST] {{ ns.system }}{{ m['content'] }} [/INST]{% set ns.system = '' %}"
    "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def write_tokenizer(folder: Path) -> None:
    """A 32,000-token byte-level BPE trained on English text, and a chat template, in ``folder``."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from benchmarks import eval_data

    raw = json.loads(eval_data.fetch().read_text(encoding="utf-8"))  # SQuAD format, whichever set is at hand
    texts = [p["context"] for article in raw["data"] for p in article["paragraphs"]]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": False, "add_eos_token": False,
              "chat_template": CHAT_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


def make_gguf(out: Path, n_layers: int = 32, quant: str = "Q4_K_M", workdir: Path | None = None) -> Path:
    """Write the checkpoint in a temporary folder beside ``workdir``, convert it to ``out``
    and remove the checkpoint (also when the conversion fails)."""
    from convert.pipeline import convert_checkpoint

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rt-make-7b-", dir=workdir or out.parent))
    try:
        t0 = time.perf_counter()
        size = write_checkpoint(work / "checkpoint", n_layers)
        write_tokenizer(work / "checkpoint")
        print(f"checkpoint: {n_layers} layers, {size / GB:.2f} GB bf16, {time.perf_counter() - t0:.0f} s",
              flush=True)
        t0 = time.perf_counter()
        result = convert_checkpoint(work / "checkpoint", work / out.name, quant, name="mistral7b-shape")
        print(f"converted to {quant}: {result.size / GB:.2f} GB, {time.perf_counter() - t0:.0f} s", flush=True)
        (work / out.name).replace(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--layers", type=int, default=32, help="transformer blocks (Mistral-7B: 32)")
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--force", action="store_true", help="remake it even if --out exists")
    args = parser.parse_args()
    if args.out.exists() and not args.force:
        print(f"{args.out} exists ({args.out.stat().st_size / GB:.2f} GB); --force remakes it")
        return
    print(make_gguf(args.out, args.layers, args.quant))


if __name__ == "__main__":
    main()
