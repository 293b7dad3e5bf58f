"""Where the wall time of one ``rt ask`` goes, and what each speed feature changes, in one run.

    python benchmarks/bench_ask.py [--model GGUF] [--threads N] [--question TEXT] [--index DIR]
                                   [--max-tokens N] [--repeat N]

Each run is a fresh ``rt ask --json`` process (what a person waits for). Its ``timings`` give
the embedding-model load, the language-model load, query embedding, search, prompt building,
prompt processing and generation; process start and imports (Python, Click, rt) are measured
on their own, and what remains of the wall time is "other": opening the index, stopping the
model process, and mostly the interpreter's exit (unloading torch, where it was loaded, takes about 2 s here). With
no ``--index`` the repository's docs/ are indexed into a temporary folder first (not counted).
The default model is the embedded SmolLM2 (a temporary RT_HOME, so no registry default
applies); ``--model`` takes any GGUF, e.g. the Mistral-7B-shaped one of make_7b_gguf.py.

The same question is asked with each speed feature of issue 10 on alone, all on, and all off
("today's path": a fresh RT_HOME per run, no prompt lookup, no packing, queries embedded with
sentence-transformers and torch), the configurations taking turns ``--repeat`` times:

* prefix cache: RT_HOME's saved prompt prefix, warmed once by a *different* question on the
  same index, so a run reuses what two questions share (the system prompt, the instructions,
  any source they both retrieve), not its own whole prompt;
* prompt packing: ``rt ask``'s packing switch when this rt has one (runtime/rag/packing.py);
* prompt lookup: ``--prompt-lookup``;
* light embedder: the query and packing sentences embedded in numpy
  (runtime/index/light_embedder.py) instead of loading torch (``RT_LIGHT_EMBEDDER=0`` in every
  other configuration but "all on").

Time to first token is the wall time up to the end of prompt processing (process start and
imports, both model loads, retrieval, coverage, prompt building, prompt processing) plus one
generated token (generation time / tokens). Prompt tokens/s counts the tokens processed, not
those taken from the prefix cache. Medians, with the spread (min-max) of the time to first token.
On a model with random weights (make_7b_gguf.py) the answer text is noise and prompt lookup has
nothing to copy, but the prompt side (tokens, prefix reuse, prompt processing) is what a real
7B would do with the same prompt; generation tokens/s are a real 7B's per token.

``--hybrid`` compares plain loading (``--no-repack``) with the hybrid (``--repack``: the prompt
on the mapped weights, generation on repacked ones, issue 20) instead, the two taking turns,
both with a warm prefix cache and a repack probe already made, no prompt lookup (the hybrid
has none), the light embedder. It prints hybrid / plain ratios and the load average
(``os.getloadavg``, 1 minute) beside every run: on a shared machine the load moves the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_runtime import rss  # noqa: E402

RT = [sys.executable, "-c", "from runtime.cli import main; main()"]
README_QUESTION = "How does rt keep memory use low?"
WARM_QUESTION = "How is a checkpoint converted to a GGUF file?"  # fills the prefix cache


def timed_run(command: list[str], env: dict[str, str],
              peak: dict[str, int] | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of a command that must succeed; with ``peak``, the largest RssAnon
    (bytes) any single process below it reached, sampled every 0.2 s, lands in ``peak["anon"]``."""
    started = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, cwd=ROOT) as proc:
        sampler = None
        if peak is not None:
            sampler = threading.Thread(target=_sample_anon, args=(proc, peak), daemon=True)
            sampler.start()
        out, err = proc.communicate()
        if sampler is not None:
            sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"bench_ask: {' '.join(command[3:])} failed:\n{err}")
    return wall, out


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:  # the parent pid is the 2nd field after the ")" that ends the command name
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _sample_anon(proc: subprocess.Popen[str], peak: dict[str, int]) -> None:
    while proc.poll() is None:
        for pid in _descendants(proc.pid):
            peak["anon"] = max(peak.get("anon", 0), rss(pid).get("RssAnon", 0))
        time.sleep(0.2)


def read_bandwidth(threads: int, size: int = 1 << 30) -> float:
    """Bytes per second that ``threads`` threads read from memory, each xor-reducing its own
    ``size``-byte array (numpy releases the GIL), best of 3. A token of generation reads every
    weight once, so bandwidth / weights bytes bounds generation tokens/s."""
    import numpy as np

    arrays = [np.ones(size // 8, dtype=np.uint64) for _ in range(threads)]
    best = 0.0
    for _ in range(3):
        workers = [threading.Thread(target=np.bitwise_xor.reduce, args=(a,)) for a in arrays]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = max(best, threads * size / (time.perf_counter() - started))
    return best


def python_seconds(code: str, env: dict[str, str]) -> float:
    """Wall time of a fresh interpreter running ``code``."""
    return timed_run([sys.executable, "-c", code], env)[0]


def build_index(env: dict[str, str], folder: Path) -> float:
    wall, _ = timed_run(RT + ["index", str(ROOT / "docs"), "--index", str(folder), "--no-progress"], env)
    return wall


def one_ask(question: str, index: Path, max_tokens: int, env: dict[str, str],
            extra: tuple[str, ...] = ()) -> dict[str, float]:
    """Split one ``rt ask --json`` run's wall time into its parts."""
    start_and_imports = python_seconds("import runtime.cli, runtime.cli.ask", env)
    peak: dict[str, int] = {}
    wall, out = timed_run(RT + ["ask", question, "--index", str(index), "--json",
                                "--max-tokens", str(max_tokens), *extra], env, peak)
    data = json.loads(out)
    t = data["timings"]
    parts = {
        "process start + imports": start_and_imports,
        "embedding model load": t["embedding_model_load"],
        "model load": t["model_load"],
        "query embedding": t["query_embedding"],
        "search": t["search"],
        "coverage": t.get("coverage", 0.0),
        "prompt building (token counting)": t["prompt_building"],
        "prompt processing": t["prompt_processing"],
        "generation": t["generation"],
    }
    parts["other (index open, evidence, exit)"] = max(0.0, wall - sum(parts.values()))
    parts["total wall"] = wall
    usage = data["usage"]
    per_token = t["generation"] / max(1, usage["completion_tokens"])
    parts["_ttft"] = sum(v for k, v in parts.items() if k not in ("generation", "total wall")
                         and not k.startswith("other")) + per_token
    parts["_prompt_tokens"] = usage["prompt_tokens"]
    parts["_processed_tokens"] = usage["prompt_tokens"] - usage.get("cached_tokens", 0)
    parts["_completion_tokens"] = usage["completion_tokens"]
    parts["_cited"] = float(bool(data["citations"]))
    parts["_load"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    parts["_hybrid"] = float(bool((t.get("loading") or {}).get("repack", {}).get("repack")))
    parts["_covered"] = float(bool(data["covered"]))
    parts["_rss_anon"] = float(peak.get("anon", 0))
    return parts


def table(runs: list[dict[str, float]]) -> str:
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    wall = median["total wall"]
    rows = [f"{'step':<36} {'seconds':>8} {'share':>7}", "-" * 53]
    for key, value in median.items():
        if key.startswith("_") or key == "total wall":
            continue
        rows.append(f"{key:<36} {value:8.3f} {value / wall:7.1%}")
    rows += ["-" * 53, f"{'total wall':<36} {wall:8.3f} {1:7.1%}"]
    overhead = wall - median["prompt processing"] - median["generation"]
    rows.append(f"{'overhead outside prompt + generation':<36} {overhead:8.3f} {overhead / wall:7.1%}")
    rows.append(f"\nprompt {median['_prompt_tokens']:.0f} tokens, {median['_processed_tokens']:.0f} processed "
                f"({median['_processed_tokens'] / median['prompt processing']:.1f} tokens/s), "
                f"answer {median['_completion_tokens']:.0f} tokens "
                f"({median['_completion_tokens'] / median['generation']:.1f} tokens/s); "
                f"cited a source in {sum(r['_cited'] for r in runs):.0f} of {len(runs)} runs")
    return "\n".join(rows)


def packing_switch() -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """``rt ask``'s (on, off) packing flags, read from its --help; None if it has none."""
    import re

    done = subprocess.run(RT + ["ask", "--help"], capture_output=True, text=True, cwd=ROOT)
    found = re.search(r"--([\w-]*pack[\w-]*)\s*/\s*--(no-[\w-]*pack[\w-]*)", done.stdout)
    return ((f"--{found.group(1)}",), (f"--{found.group(2)}",)) if found else None


def packing_without_switch() -> str:
    """What the configurations do about packing when ``rt ask`` has no switch for it."""
    code = "from runtime.rag.config import PackingOptions; print(PackingOptions().enabled)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return "not in this rt (left out)"
    state = "on" if done.stdout.strip() == "True" else "off"
    return f"{state} in every configuration (rt ask has no switch for it), so 'today' is not today's path"


def configurations(packing: tuple[tuple[str, ...], tuple[str, ...]] | None
                   ) -> dict[str, tuple[bool, tuple[str, ...], bool]]:
    """Name -> (prefix cache warm, rt ask flags, light embedder): all off, each feature alone, all on."""
    pack_on, pack_off = packing if packing is not None else ((), ())
    lookup_on, lookup_off = ("--prompt-lookup",), ("--no-prompt-lookup",)
    configs = {
        "today (all off)": (False, pack_off + lookup_off, False),
        "prefix cache": (True, pack_off + lookup_off, False),
    }
    if packing is not None:
        configs["prompt packing"] = (False, pack_on + lookup_off, False)
    configs["prompt lookup"] = (False, pack_off + lookup_on, False)
    configs["light embedder"] = (False, pack_off + lookup_off, True)
    configs["all on"] = (True, pack_on + lookup_on, True)
    return configs


def compare(runs: dict[str, list[dict[str, float]]]) -> str:
    """One row per configuration, as ratios to today's path."""
    def med(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    def speed(name: str, tokens: str, seconds: str) -> float:
        return statistics.median(run[tokens] / max(run[seconds], 1e-9) for run in runs[name])

    base = "today (all off)"
    rows = [f"{'configuration':<17} {'first token s':>14} {'ratio':>6} {'spread s':>13} {'prompt tok':>10} "
            f"{'processed':>9} {'prompt tok/s':>12} {'gen tok/s':>9} {'gen ratio':>9}", "-" * 108]
    for name in runs:
        ttfts = [run["_ttft"] for run in runs[name]]
        gen = speed(name, "_completion_tokens", "generation")
        rows.append(f"{name:<17} {med(name, '_ttft'):14.2f} {med(name, '_ttft') / med(base, '_ttft'):5.2f}x "
                    f"{min(ttfts):6.1f}-{max(ttfts):<6.1f} {med(name, '_prompt_tokens'):10.0f} "
                    f"{med(name, '_processed_tokens'):9.0f} "
                    f"{speed(name, '_processed_tokens', 'prompt processing'):12.1f} {gen:9.2f} "
                    f"{gen / speed(base, '_completion_tokens', 'generation'):8.2f}x")
    ratio = med("all on", "_ttft") / med(base, "_ttft")
    verdict = "met" if ratio <= 0.5 else f"missed by {ratio / 0.5:.2f}x"
    rows.append(f"\ntime to first token, all on / today: {ratio:.2f}x (target <= 0.5x on the 7B shape: {verdict})")
    uncovered = sum(1 for name in runs for run in runs[name] if not run["_covered"])
    if uncovered:
        rows.append(f"note: {uncovered} runs judged the question not covered (no sources, no generation)")
    return "\n".join(rows)


HYBRID_CONFIGS = {"plain": ("--no-repack", "--no-prompt-lookup"), "hybrid": ("--repack", "--no-prompt-lookup")}


def compare_hybrid(runs: dict[str, list[dict[str, float]]], limit: float | None = None,
                   anon_estimate: float | None = None) -> str:
    """Each run with the load average beside it, then the hybrid / plain ratios of the medians;
    ``limit`` is the bandwidth bound on generation tokens/s, ``anon_estimate`` the preflight's
    anonymous memory for the hybrid (bytes)."""
    rows = [f"{'run':<10} {'first token s':>13} {'prompt tok/s':>12} {'tokens':>6} {'gen tok/s':>9} {'answer s':>8} "
            f"{'RssAnon MiB':>11} {'load avg':>8}", "-" * 85]
    for i in range(len(runs["plain"])):
        for name in HYBRID_CONFIGS:
            run = runs[name][i]
            rows.append(f"{name + ' ' + str(i + 1):<10} {run['_ttft']:13.2f} "
                        f"{run['_processed_tokens'] / max(run['prompt processing'], 1e-9):12.1f} "
                        f"{run['_completion_tokens']:6.0f} "
                        f"{run['_completion_tokens'] / max(run['generation'], 1e-9):9.2f} "
                        f"{run['prompt processing'] + run['generation']:8.1f} "
                        f"{run['_rss_anon'] / 2**20:11.0f} {run['_load']:8.1f}")

    def med(name: str, value: str) -> float:
        return statistics.median(eval_value(run, value) for run in runs[name])

    def eval_value(run: dict[str, float], value: str) -> float:
        if value == "prompt":
            return run["_processed_tokens"] / max(run["prompt processing"], 1e-9)
        if value == "gen":
            return run["_completion_tokens"] / max(run["generation"], 1e-9)
        return run[value]

    hybrid_used = sum(run["_hybrid"] for run in runs["hybrid"])
    rows.append(f"\nhybrid / plain (medians): generation tokens/s {med('hybrid', 'gen') / med('plain', 'gen'):.2f}x, "
                f"prompt tokens/s {med('hybrid', 'prompt') / med('plain', 'prompt'):.2f}x, time to first token "
                f"{med('hybrid', '_ttft') / med('plain', '_ttft'):.2f}x; the hybrid was used in "
                f"{hybrid_used:.0f} of {len(runs['hybrid'])} runs")
    if limit:
        rows.append(f"bandwidth bound on generation: {limit:.2f} tokens/s; hybrid at "
                    f"{med('hybrid', 'gen') / limit:.0%} of it, plain at {med('plain', 'gen') / limit:.0%}")
    if anon_estimate:
        biggest = max(run["_rss_anon"] for run in runs["hybrid"])
        rows.append(f"hybrid RssAnon peak {biggest / 2**20:.0f} MiB against the preflight's "
                    f"{anon_estimate / 2**20:.0f} MiB of anonymous memory (rt info --repack: all but the "
                    f"mapped weights): {'within' if biggest <= anon_estimate else 'OVER'} the estimate")
    loads = [run["_load"] for name in runs for run in runs[name]]
    rows.append(f"load average during the runs: {min(loads):.1f}-{max(loads):.1f}")
    return "\n".join(rows)


def hybrid_bounds(model: str | None, threads: int | None, env: dict[str, str]) -> tuple[float, float]:
    """Generation's bandwidth bound (tokens/s: read bandwidth over the weights' bytes) and the
    preflight's anonymous memory for the hybrid (``rt info --repack --json``: total less the
    mapped weights), printed before the runs so the bandwidth is measured on a quiet machine."""
    _, out = timed_run(RT + ["info", *([model] if model else []), "--repack", "--json"], env)
    memory = json.loads(out)["memory"]
    bandwidth = read_bandwidth(threads or os.cpu_count() or 1)
    limit = bandwidth / memory["weights"]
    print(f"read bandwidth ({threads or os.cpu_count()} threads, numpy): {bandwidth / 1e9:.1f} GB/s over "
          f"{memory['weights'] / 1e9:.2f} GB of weights: at most {limit:.2f} generated tokens/s", flush=True)
    return limit, memory["total"] - memory["weights"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a GGUF [default: the embedded SmolLM2]")
    parser.add_argument("--threads", type=int, help="rt ask --threads [default: rt's]")
    parser.add_argument("--question", default=README_QUESTION)
    parser.add_argument("--index", type=Path, help="an existing index [default: docs/ indexed now]")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hybrid", action="store_true", help="plain loading against the hybrid, in turns")
    parser.add_argument("--only", help="comma-separated configurations to run besides today's and all on "
                                       "(prefix, packing, lookup, light) [default: all]")
    args = parser.parse_args()

    common: tuple[str, ...] = ()
    if args.model:
        common += ("--model", str(Path(args.model).resolve()))
    if args.threads:
        common += ("--threads", str(args.threads))
    packing = packing_switch()
    configs = configurations(packing)
    if args.hybrid:  # both warm (prefix cache, repack probe), the light embedder
        configs = {name: (True, flags, True) for name, flags in HYBRID_CONFIGS.items()}
    elif args.only is not None:
        wanted = {word.strip() for word in args.only.split(",")}
        configs = {name: c for name, c in configs.items()
                   if name in ("today (all off)", "all on") or name.split()[-1] in wanted or name.split()[0] in wanted}
    with tempfile.TemporaryDirectory(prefix="rt-bench-ask-") as scratch:
        warm_home = Path(scratch) / "warm-home"
        # RT_LOOP_STOP=0: every answer runs to --max-tokens (a random-weight model loops at once)
        env = dict(os.environ, RT_HOME=str(warm_home), RT_LOOP_STOP="0")
        env.pop("RT_MODEL", None)
        index = args.index
        if index is None:
            index = Path(scratch) / "index"
            print(f"indexing docs/ into {index}: {build_index(env, index):.1f} s (not counted)")
        bounds = hybrid_bounds(str(Path(args.model).resolve()) if args.model else None, args.threads, env) \
            if args.hybrid else (None, None)
        bare = python_seconds("pass", env)
        torch_import = python_seconds("import sentence_transformers", env) - bare
        for flags in ([c[1] for c in configs.values()] if args.hybrid else [configs["all on"][1]]):
            warm = one_ask(WARM_QUESTION, index, 1, env, common + flags)
        print(f"prefix cache warmed by {WARM_QUESTION!r} ({warm['_prompt_tokens']:.0f} prompt tokens)", flush=True)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
        for i in range(args.repeat):
            for name, (prefix, flags, light) in configs.items():
                home = warm_home if prefix else Path(scratch) / f"cold-home-{i}-{len(runs[name])}-{name[:6]}"
                run_env = dict(env, RT_HOME=str(home), RT_LIGHT_EMBEDDER="1" if light else "0")
                runs[name].append(one_ask(args.question, index, args.max_tokens, run_env, common + flags))
                print(f"  {name}: first token {runs[name][-1]['_ttft']:.2f} s", file=sys.stderr, flush=True)
    model = Path(args.model).name if args.model else "the embedded SmolLM2"
    print(f"\nrt ask {args.question!r} --max-tokens {args.max_tokens} with {model}; median of {args.repeat} "
          f"runs; {os.cpu_count()} CPUs; threads {args.threads or 'rt default'}")
    print(f"prompt packing: {' / '.join(packing[0] + packing[1]) if packing else packing_without_switch()}")
    print(f"(bare interpreter start {bare:.3f} s; importing sentence-transformers + torch alone "
          f"{torch_import:.3f} s, part of the embedding model load where the light embedder is off)\n")
    if args.hybrid:
        print(compare_hybrid(runs, *bounds))
        return
    print(compare(runs))
    print(f"\nwhere the time goes, all on:\n{table(runs['all on'])}")


if __name__ == "__main__":
    main()
