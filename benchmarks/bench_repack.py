"""``--repack``: prompt and generation speed and anonymous memory, with and without, in one run.

    python benchmarks/bench_repack.py [GGUF] [--threads N] [--prompt N] [--tokens N] [--repeat N]

Each measurement is a fresh process that loads the model with llama.cpp's weight repacking off
or on (``LoadOptions.repack``; rt's engine directly, without ``rt``'s crash probe), reads its
``RssAnon`` (Linux ``/proc/self/status``: memory the process owns, not the mapped file) after
the load, runs a short warm-up (the first pass faults the mapped weights in), then processes a
``--prompt``-token prompt and generates ``--tokens`` tokens (greedy) from an empty KV cache,
and reads ``RssAnon`` again. The two settings take turns ``--repeat`` times; medians and the
spread are printed, with repacked / plain ratios. Default model: the Mistral-7B-shaped
Q4_K_M of make_7b_gguf.py. Random weights do not change the arithmetic per token.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.make_7b_gguf import DEFAULT_OUT  # noqa: E402

GB = 1e9


def rss_anon() -> int:
    """This process's RssAnon in bytes (0 where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(path: str, repack: bool, threads: int, n_prompt: int, n_tokens: int) -> dict[str, float]:
    """In this process: load, warm up, one prompt + generation; speeds and RssAnon."""
    import time

    from runtime.config import GenerateOptions, LoadOptions
    from runtime.llm.llama_engine import LlamaEngine

    text = " ".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))
    started = time.perf_counter()
    with LlamaEngine(path, LoadOptions(n_ctx=n_prompt + n_tokens + 64, threads=threads, repack=repack,
                                       prefix_cache=False, isolate=False)) as engine:
        loaded = time.perf_counter() - started
        after_load = rss_anon()
        prompt = engine.detokenize(engine.tokenize(text)[:n_prompt])
        for _ in engine.stream(prompt[:200], GenerateOptions(max_tokens=2)):
            pass
        engine._forget_cache()
        generator = engine.stream(prompt, GenerateOptions(max_tokens=n_tokens))
        while True:
            try:
                next(generator)
            except StopIteration as stop:
                done = stop.value
                break
        return {"load_s": loaded, "anon_after_load": after_load, "anon_after_run": rss_anon(),
                "prompt_tps": done.prompt_tokens / done.prompt_seconds,
                "gen_tps": done.tokens_per_second, "prompt_tokens": done.prompt_tokens,
                "completion_tokens": done.completion_tokens}


def run_child(path: str, repack: bool, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", "1" if repack else "0", path, "--threads", str(args.threads),
               "--prompt", str(args.prompt), "--tokens", str(args.tokens)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"bench_repack: the {'repacked' if repack else 'plain'} load failed "
                 f"(exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=str(DEFAULT_OUT))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=256, help="prompt tokens [256]")
    parser.add_argument("--tokens", type=int, default=32, help="generated tokens [32]")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.model, args.child == "1", args.threads, args.prompt, args.tokens)))
        return

    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(args.repeat):
        for repack in (False, True):
            results[repack].append(run_child(args.model, repack, args))
            r = results[repack][-1]
            print(f"  repack={repack}: prompt {r['prompt_tps']:.1f} tok/s, generation {r['gen_tps']:.2f} tok/s, "
                  f"RssAnon {r['anon_after_run'] / GB:.2f} GB", file=sys.stderr, flush=True)

    def med(repack: bool, key: str) -> float:
        return statistics.median(r[key] for r in results[repack])

    def spread(repack: bool, key: str) -> str:
        values = [r[key] for r in results[repack]]
        return f"{min(values):.2f}-{max(values):.2f}"

    print(f"{Path(args.model).name}, {args.threads} threads, {args.prompt}-token prompt, {args.tokens} tokens; "
          f"median of {args.repeat} (spread)")
    print(f"{'':10} {'prompt tok/s':>22} {'generation tok/s':>22} {'RssAnon after load':>19} {'after run':>10} "
          f"{'load s':>7}")
    for repack in (False, True):
        label = "repack" if repack else "plain"
        print(f"{label:10} {med(repack, 'prompt_tps'):8.1f} ({spread(repack, 'prompt_tps'):>11}) "
              f"{med(repack, 'gen_tps'):8.2f} ({spread(repack, 'gen_tps'):>11}) "
              f"{med(repack, 'anon_after_load') / GB:17.2f}G {med(repack, 'anon_after_run') / GB:9.2f}G "
              f"{med(repack, 'load_s'):7.1f}")
    print(f"repacked / plain: prompt {med(True, 'prompt_tps') / med(False, 'prompt_tps'):.2f}x, generation "
          f"{med(True, 'gen_tps') / med(False, 'gen_tps'):.2f}x, RssAnon "
          f"+{(med(True, 'anon_after_run') - med(False, 'anon_after_run')) / GB:.2f} GB "
          f"(file {Path(args.model).stat().st_size / GB:.2f} GB)")


if __name__ == "__main__":
    main()
