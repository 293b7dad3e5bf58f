"""Where the wall time of one ``rt ask`` goes, on the default model, printed as a table.

    python benchmarks/bench_ask.py [--question TEXT] [--index DIR] [--max-tokens N] [--repeat N]

Each run is a fresh ``rt ask --json`` process (what a person waits for). Its ``timings`` give
the embedding-model load, the language-model load, query embedding, search, prompt building,
prompt processing and generation; process start and imports (Python, Click, rt) are measured
on their own, and what remains of the wall time is "other": opening the index, stopping the
model process, and mostly the interpreter's exit (unloading torch takes about 2 s here). With
no ``--index`` the repository's docs/ are indexed into a temporary folder
first (not counted). The default model is the embedded SmolLM2 (a temporary RT_HOME, so no
registry default applies). The overhead outside prompt processing and generation is what a
person pays on every question; it is printed last. Numbers are the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RT = [sys.executable, "-c", "from runtime.cli import main; main()"]
README_QUESTION = "How does rt keep memory use low?"


def timed_run(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds and stdout of a command that must succeed."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"bench_ask: {' '.join(command[3:])} failed:\n{done.stderr}")
    return wall, done.stdout


def python_seconds(code: str, env: dict[str, str]) -> float:
    """Wall time of a fresh interpreter running ``code``."""
    return timed_run([sys.executable, "-c", code], env)[0]


def build_index(env: dict[str, str], folder: Path) -> float:
    wall, _ = timed_run(RT + ["index", str(ROOT / "docs"), "--index", str(folder), "--no-progress"], env)
    return wall


def one_ask(question: str, index: Path, max_tokens: int, env: dict[str, str]) -> dict[str, float]:
    """Split one ``rt ask --json`` run's wall time into its parts."""
    start_and_imports = python_seconds("import runtime.cli, runtime.cli.ask", env)
    wall, out = timed_run(RT + ["ask", question, "--index", str(index), "--json",
                                "--max-tokens", str(max_tokens)], env)
    data = json.loads(out)
    t = data["timings"]
    parts = {
        "process start + imports": start_and_imports,
        "embedding model load (torch)": t["embedding_model_load"],
        "model load": t["model_load"],
        "query embedding": t["query_embedding"],
        "search": t["search"],
        "prompt building (token counting)": t["prompt_building"],
        "prompt processing": t["prompt_processing"],
        "generation": t["generation"],
    }
    parts["other (index open, exit)"] = max(0.0, wall - sum(parts.values()))
    parts["total wall"] = wall
    parts["_prompt_tokens"] = data["usage"]["prompt_tokens"]
    parts["_completion_tokens"] = data["usage"]["completion_tokens"]
    parts["_cited"] = float(bool(data["citations"]))
    return parts


def table(runs: list[dict[str, float]]) -> str:
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    wall = median["total wall"]
    rows = [f"{'step':<34} {'seconds':>8} {'share':>7}", "-" * 51]
    for key, value in median.items():
        if key.startswith("_") or key == "total wall":
            continue
        rows.append(f"{key:<34} {value:8.3f} {value / wall:7.1%}")
    rows += ["-" * 51, f"{'total wall':<34} {wall:8.3f} {1:7.1%}"]
    overhead = wall - median["prompt processing"] - median["generation"]
    rows.append(f"{'overhead outside prompt + generation':<34} {overhead:8.3f} {overhead / wall:7.1%}")
    rows.append(f"\nprompt {median['_prompt_tokens']:.0f} tokens "
                f"({median['_prompt_tokens'] / median['prompt processing']:.0f} tokens/s), "
                f"answer {median['_completion_tokens']:.0f} tokens "
                f"({median['_completion_tokens'] / median['generation']:.1f} tokens/s); "
                f"cited a source in {sum(r['_cited'] for r in runs):.0f} of {len(runs)} runs")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--question", default=README_QUESTION)
    parser.add_argument("--index", type=Path, help="an existing index [default: docs/ indexed now]")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rt-bench-ask-") as scratch:
        env = dict(os.environ, RT_HOME=str(Path(scratch) / "home"))
        env.pop("RT_MODEL", None)
        index = args.index
        if index is None:
            index = Path(scratch) / "index"
            print(f"indexing docs/ into {index}: {build_index(env, index):.1f} s (not counted)")
        bare = python_seconds("pass", env)
        torch_import = python_seconds("import sentence_transformers", env) - bare
        runs = [one_ask(args.question, index, args.max_tokens, env) for _ in range(args.repeat)]
    print(f"rt ask {args.question!r} --max-tokens {args.max_tokens}; median of {args.repeat} runs; "
          f"{os.cpu_count()} CPUs")
    print(f"(bare interpreter start {bare:.3f} s; importing sentence-transformers + torch alone "
          f"{torch_import:.3f} s, part of the embedding model load)\n")
    print(table(runs))


if __name__ == "__main__":
    main()
