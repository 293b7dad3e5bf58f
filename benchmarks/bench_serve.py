"""``rt serve`` under concurrent clients on loopback: throughput, time to first token, errors, memory.

    python benchmarks/bench_serve.py [--clients 8] [--seconds 30] [--max-tokens 16] [--model NAME|PATH] [--threads N]

Starts ``rt serve`` (the embedded SmolLM2 unless ``--model``) on a free port with a temporary
RT_HOME, then runs two phases of ``--seconds`` each, every client looping streamed chat requests:
one client alone (the reference), then ``--clients`` at once. For each phase it prints
requests/s, time to first token p50/p99 and errors (the target is 0: a full queue would show
up as 429s), and the ratios of the concurrent phase to the reference. Memory is the resident
set of the server and its model process, after a warm-up request and again at the end; it
should not grow.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
RT = [sys.executable, "-c", "from runtime.cli import main; main()"]
PROMPTS = ["What is the capital of {}?", "Name a famous dish from {}.", "Describe the weather in {}."]
PLACES = ["France", "Italy", "Spain", "Japan", "Peru", "Egypt", "Canada", "Norway"]


@dataclass
class Phase:
    """What the clients of one phase saw."""

    seconds: float = 0.0
    first_token: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.first_token)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.first_token)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, home: Path, model: str | None, threads: int | None) -> subprocess.Popen[bytes]:
    command = RT + ["serve", "--port", str(port), "--ctx", "2048", "--max-queue", "64"]
    if model:
        command += ["--model", model]
    if threads:
        command += ["--threads", str(threads)]
    env = dict(os.environ, RT_HOME=str(home), HF_HUB_OFFLINE="1")
    process = subprocess.Popen(command, env=env, cwd=home, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench_serve: rt serve exited with status {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    sys.exit("bench_serve: rt serve did not start in 180 s")


def one_request(url: str, n: int, max_tokens: int) -> float:
    """Stream one chat answer; return the seconds to its first content token."""
    body = {"messages": [{"role": "user", "content": PROMPTS[n % 3].format(PLACES[n % len(PLACES)])}],
            "max_tokens": max_tokens, "stream": True}
    started = time.perf_counter()
    first = None
    with httpx.stream("POST", url + "/chat/completions", json=body, timeout=600) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        for line in response.iter_lines():
            if line.startswith("data: {") and first is None:
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("no content token")
    return first


def run_phase(url: str, clients: int, seconds: float, max_tokens: int) -> Phase:
    phase = Phase()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        n = index
        while time.monotonic() < stop_at:
            try:
                phase.first_token.append(one_request(url, n, max_tokens))
            except Exception as exc:  # noqa: BLE001 - counted, the target is none
                phase.errors.append(f"{type(exc).__name__}: {exc}")
            n += clients

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    phase.seconds = time.perf_counter() - started
    return phase


def rss_mib(process: subprocess.Popen[bytes]) -> float:
    parent = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 2**20


def report(name: str, phase: Phase) -> None:
    print(f"{name:<12} {phase.requests:>5} requests  {phase.requests / phase.seconds:6.2f} req/s  "
          f"TTFT p50 {phase.percentile(50) * 1000:7.0f} ms  p99 {phase.percentile(99) * 1000:7.0f} ms  "
          f"errors {len(phase.errors)}")
    for error in sorted(set(phase.errors))[:5]:
        print(f"  error: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads [default: rt's, all cores]; 1 on a busy shared machine")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1"
        server = start_server(port, Path(tmp), args.model, args.threads)
        try:
            one_request(url, 0, args.max_tokens)  # warm-up: the first prompt fills the KV cache
            before = rss_mib(server)
            alone = run_phase(url, 1, args.seconds, args.max_tokens)
            together = run_phase(url, args.clients, args.seconds, args.max_tokens)
            after = rss_mib(server)
        finally:
            server.terminate()
            server.wait(30)
    print(f"rt serve, {args.clients} concurrent streaming clients, {args.seconds:.0f} s per phase, "
          f"max_tokens {args.max_tokens}, threads {args.threads or 'default'}")
    report("1 client", alone)
    report(f"{args.clients} clients", together)
    if alone.requests and together.requests:
        print(f"ratio {args.clients} clients / 1 client: req/s "
              f"{(together.requests / together.seconds) / (alone.requests / alone.seconds):.2f}x, "
              f"TTFT p50 {together.percentile(50) / alone.percentile(50):.1f}x "
              f"(one generation at a time: a client waits for those ahead of it)")
    print(f"memory (server + model process RSS): before {before:.0f} MiB, after {after:.0f} MiB, "
          f"growth {after - before:+.0f} MiB ({(after - before) / before * 100:+.1f}%)")
    print(f"median TTFT overall {statistics.median(alone.first_token + together.first_token) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
