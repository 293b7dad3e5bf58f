"""rt's model runtime against a bare llama-cpp-python loop, side by side, in one run.

    python benchmarks/bench_runtime.py [GGUF] [--threads N] [--ctx N] [--tokens N] [--repeat N]

Both sides load the same GGUF memory-mapped with ``use_extra_bufts = False`` and the same
threads, context and batch, each in its own process (rt's model process; a child running the
bare ctypes loop), so their memory is comparable. Reported: load time, RssAnon and RssFile of
the process that holds the model (after load, after generating), prompt-processing and
generation tokens/s, and rt/bare ratios. Targets (printed, not asserted): RssAnon after load at
most 10% of the GGUF size plus the KV cache; speed ratios at least 0.95.

The rt side is timed end to end from the caller (streaming over the pipe included); greedy
generation runs to ``--tokens`` (the prompt is a story opening, so it rarely ends early) and
the bare loop then generates exactly as many tokens. The two sides take turns, run by run, so
a busy machine slows both alike; the best of ``--repeat`` runs of each side is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = ("{i}. Once upon a time, in a small village by the sea, there lived an old fisherman and his "
          "granddaughter. Every morning they walked down to the harbour together. ") * 6 + "One day,"


def rss(pid: int) -> dict[str, int]:
    """RssAnon and RssFile of ``pid`` in bytes (Linux /proc); empty elsewhere."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


# --- rt's path -----------------------------------------------------------------------------
class RtSide:
    """rt's Model with its model process (isolate=True), timed from the caller."""

    def __init__(self, path: str, threads: int, n_ctx: int) -> None:
        from runtime.config import GenerateOptions, LoadOptions
        from runtime.llm.model import Model

        started = time.perf_counter()
        self.model = Model(path, LoadOptions(n_ctx=n_ctx, threads=threads, isolate=True))
        self.load_s = time.perf_counter() - started
        self.rss_load = rss(self.model.pid)
        self.model.complete("Hello", GenerateOptions(max_tokens=1))  # warm-up: fault the mapped weights in

    def run(self, i: int, tokens: int) -> dict[str, Any]:
        from runtime.config import GenerateOptions

        begin = time.perf_counter()
        stream = self.model.stream(PROMPT.format(i=i), GenerateOptions(max_tokens=tokens))
        for _ in stream:
            pass
        wall = time.perf_counter() - begin
        c = stream.completion
        assert c is not None and c.cached_tokens <= 1  # at most a shared BOS
        return {"pp_tps": (c.prompt_tokens - c.cached_tokens) / c.prompt_seconds,
                "tg_tps": c.completion_tokens / (wall - c.prompt_seconds),
                "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens}


# --- the bare loop: its own process (--bare), one run per "run I N" line on stdin -----------
def bare_main(path: str, threads: int, n_ctx: int) -> None:
    from llama_cpp import llama_cpp as L

    from runtime.llm.llama_native import init_backend

    init_backend()  # the same silenced log as rt; no other setup
    started = time.perf_counter()
    mparams = L.llama_model_default_params()
    mparams.use_extra_bufts = False
    mparams.load_mode = L.LLAMA_LOAD_MODE_MMAP
    model = L.llama_model_load_from_file(path.encode(), mparams)
    cparams = L.llama_context_default_params()
    cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = n_ctx, 512, 512
    cparams.n_threads = cparams.n_threads_batch = threads
    ctx = L.llama_init_from_model(model, cparams)
    vocab = L.llama_model_get_vocab(model)
    print(json.dumps({"load_s": time.perf_counter() - started, "rss_load": rss(os.getpid())}), flush=True)
    memory = L.llama_get_memory(ctx)
    sampler = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    L.llama_sampler_chain_add(sampler, L.llama_sampler_init_greedy())

    def tokenize(text: str) -> list[int]:
        data = text.encode()
        buf = (L.llama_token * (len(data) + 8))()
        n = L.llama_tokenize(vocab, data, len(data), buf, len(buf), True, True)
        return list(buf[:n])

    def decode(ids: list[int]) -> None:
        arr = (L.llama_token * len(ids))(*ids)
        assert L.llama_decode(ctx, L.llama_batch_get_one(arr, len(ids))) == 0

    decode(tokenize("Hello"))  # the same warm-up as rt's
    for line in sys.stdin:
        _, i, tokens = line.split()
        L.llama_memory_clear(memory, True)
        ids = tokenize(PROMPT.format(i=i))
        t0 = time.perf_counter()
        for start in range(0, len(ids), 512):
            decode(ids[start:start + 512])
        t1 = time.perf_counter()
        for _ in range(int(tokens)):
            decode([L.llama_sampler_sample(sampler, ctx, -1)])
        t2 = time.perf_counter()
        print(json.dumps({"pp_tps": len(ids) / (t1 - t0), "tg_tps": int(tokens) / (t2 - t1),
                          "prompt_tokens": len(ids), "rss_gen": rss(os.getpid())}), flush=True)


class BareSide:
    def __init__(self, path: str, threads: int, n_ctx: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, path, "--bare", "--threads", str(threads), "--ctx", str(n_ctx)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        loaded = self._read()
        self.load_s, self.rss_load = loaded["load_s"], loaded["rss_load"]

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        return json.loads(self.process.stdout.readline())  # type: ignore[no-any-return]

    def run(self, i: int, tokens: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"run {i} {tokens}\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def measure(path: str, threads: int, n_ctx: int, tokens: int, repeat: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load both sides, then alternate runs (rt, bare, rt, bare, ...) so that both meet the same
    machine load; keep the best of each side."""
    rt_side, bare_side = RtSide(path, threads, n_ctx), BareSide(path, threads, n_ctx)
    rt: dict[str, Any] = {"load_s": rt_side.load_s, "rss_load": rt_side.rss_load, "pp_tps": 0.0, "tg_tps": 0.0}
    bare: dict[str, Any] = {"load_s": bare_side.load_s, "rss_load": bare_side.rss_load, "pp_tps": 0.0, "tg_tps": 0.0}
    for i in range(repeat):
        a = rt_side.run(i, tokens)
        b = bare_side.run(i, a["completion_tokens"])  # exactly as many tokens as rt generated
        for side, run in ((rt, a), (bare, b)):
            side.update(pp_tps=max(side["pp_tps"], run["pp_tps"]), tg_tps=max(side["tg_tps"], run["tg_tps"]),
                        prompt_tokens=run["prompt_tokens"])
        rt["completion_tokens"] = a["completion_tokens"]
        bare["rss_gen"] = b["rss_gen"]
    rt["rss_gen"] = rss(rt_side.model.pid)
    rt_side.model.close()
    bare_side.close()
    return rt, bare


# --- report ---------------------------------------------------------------------------------
def mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:8.1f} MiB"


def report(path: str, threads: int, n_ctx: int, rt: dict[str, Any], bare: dict[str, Any]) -> None:
    from runtime.config import LoadOptions
    from runtime.models.gguf_file import inspect_gguf
    from runtime.models.memory import estimate_memory

    info = inspect_gguf(path)
    kv = estimate_memory(info, LoadOptions(n_ctx=n_ctx, threads=threads)).kv_cache
    print(f"model   {Path(path).name}  ({info.file_size / 2**20:.1f} MiB, {info.architecture}, {info.quantization})")
    print(f"setup   threads={threads} ctx={n_ctx} prompt={rt['prompt_tokens']} tokens, "
          f"generated={rt['completion_tokens']} tokens, use_extra_bufts=False, mmap\n")
    rows = [
        ("load time", f"{rt['load_s']:8.2f} s", f"{bare['load_s']:8.2f} s", ""),
        ("RssAnon after load", mib(rt["rss_load"].get("RssAnon")), mib(bare["rss_load"].get("RssAnon")), ""),
        ("RssFile after load", mib(rt["rss_load"].get("RssFile")), mib(bare["rss_load"].get("RssFile")), ""),
        ("RssAnon after generating", mib(rt["rss_gen"].get("RssAnon")), mib(bare["rss_gen"].get("RssAnon")), ""),
        ("RssFile after generating", mib(rt["rss_gen"].get("RssFile")), mib(bare["rss_gen"].get("RssFile")), ""),
        ("prompt processing", f"{rt['pp_tps']:8.1f} t/s", f"{bare['pp_tps']:8.1f} t/s",
         f"{rt['pp_tps'] / bare['pp_tps']:.3f}"),
        ("generation", f"{rt['tg_tps']:8.1f} t/s", f"{bare['tg_tps']:8.1f} t/s",
         f"{rt['tg_tps'] / bare['tg_tps']:.3f}"),
    ]
    print(f"{'':26}{'rt (model process)':>20}{'bare llama.cpp loop':>22}{'rt/bare':>10}")
    for name, a, b, ratio in rows:
        print(f"{name:26}{a:>20}{b:>22}{ratio:>10}")
    budget = 0.10 * info.file_size + kv
    anon = rt["rss_load"].get("RssAnon")
    print(f"\ntargets: RssAnon after load <= 10% of GGUF + KV cache = {budget / 2**20:.1f} MiB "
          f"(KV {kv / 2**20:.1f} MiB): {'met' if anon is not None and anon <= budget else 'NOT met'}")
    for name, key in (("prompt", "pp_tps"), ("generation", "tg_tps")):
        ratio = rt[key] / bare[key]
        print(f"         {name} speed ratio >= 0.95: {ratio:.3f} {'met' if ratio >= 0.95 else 'NOT met'}")


def main() -> None:
    from runtime.config import default_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf", nargs="?", help="GGUF file [default: the embedded SmolLM2]")
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gguf is None:
        from runtime.models.embedded import default_model_path

        args.gguf = str(default_model_path())
    if args.bare:
        bare_main(args.gguf, args.threads, args.ctx)
        return
    rt, bare = measure(args.gguf, args.threads, args.ctx, args.tokens, args.repeat)
    report(args.gguf, args.threads, args.ctx, rt, bare)


if __name__ == "__main__":
    main()
