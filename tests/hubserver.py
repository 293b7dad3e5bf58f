"""A small Hugging Face hub on 127.0.0.1 for tests, spoken to by the real ``huggingface_hub``.

It answers what ``huggingface_hub`` 2.x asks for a model repo:

- ``GET /api/models/{repo}[/revision/{rev}]`` (``?blobs=true`` adds sizes and LFS sha256)
- ``GET /api/models/{repo}/tree/{rev}[/{path}]`` (``snapshot_download``'s listing)
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` with ``X-Repo-Commit``, ``ETag``,
  ``X-Linked-Etag`` (the sha256 for LFS files), ``X-Linked-Size``, and ``Range`` (206).

It never sends Xet headers, so ``hf_xet`` stays out of the way. Faults for tests: drop the
connection part-way through a file, answer an error status, report a wrong sha256, require a
token (private or gated repos). Every request is logged in ``server.requests``.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".model")


@dataclass
class RepoFile:
    """One file of a served repo; ``source`` is bytes or a path streamed from disk."""

    path: str
    source: bytes | Path
    lfs: bool
    size: int = 0
    sha256: str = ""
    git_sha1: str = ""

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        git = hashlib.sha1()
        if isinstance(self.source, bytes):
            self.size = len(self.source)
            digest.update(self.source)
            git.update(b"blob %d\0" % self.size + self.source)
        else:
            self.size = self.source.stat().st_size
            git.update(b"blob %d\0" % self.size)
            with open(self.source, "rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
                    git.update(block)
        self.sha256 = digest.hexdigest()
        self.git_sha1 = git.hexdigest()

    def read(self, start: int, end: int) -> bytes:
        if isinstance(self.source, bytes):
            return self.source[start:end]
        with open(self.source, "rb") as fh:
            fh.seek(start)
            return fh.read(end - start)


@dataclass
class HubRepo:
    """A served model repo."""

    repo_id: str
    files: dict[str, RepoFile]
    commit: str
    token: str | None = None  # required bearer token (private/gated repo)
    gated: bool = False
    reported_sha256: dict[str, str] = field(default_factory=dict)  # lie about these files' sha256

    def sha256_of(self, f: RepoFile) -> str:
        return self.reported_sha256.get(f.path, f.sha256)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


class HubServer:
    """Start with ``with HubServer() as hub:``; ``hub.url`` is the ``HF_ENDPOINT`` to use."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[Request] = []
        self.drop_after: dict[str, int] = {}  # file path -> bytes sent before the next full GET is cut
        self.fail_after_drop: dict[str, int] = {}  # file path -> status answered to every GET after the cut
        self.status: dict[str, int] = {}  # file path -> status answered to every request for it
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}"

    def add_repo(self, repo_id: str, files: dict[str, bytes | Path], **options: object) -> HubRepo:
        """Serve ``files`` (repo path -> content) as ``repo_id``; LFS by suffix, as on the hub."""
        entries = {p: RepoFile(p, src, lfs=p.lower().endswith(LFS_SUFFIXES)) for p, src in files.items()}
        commit = hashlib.sha1(repo_id.encode() + b"".join(f.sha256.encode() for f in entries.values())).hexdigest()
        repo = HubRepo(repo_id, entries, commit, **options)  # type: ignore[arg-type]
        self.repos[repo_id] = repo
        return repo

    def gets_of(self, path: str) -> list[Request]:
        """The GET requests that fetched the file ``path`` (any repo)."""
        return [r for r in self.requests if r.method == "GET" and "/resolve/" in r.path and r.path.endswith("/" + path)]

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


_API = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$")
_TREE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined, no-any-return]

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_GET(self) -> None:
        self._route("GET")

    # --- routing -------------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.hub.requests.append(Request(method, path, {k.lower(): v for k, v in self.headers.items()}))
        query = parse_qs(url.query)
        if m := _TREE.match(path):
            self._with_repo(m.group(1), m.group(2), lambda repo: self._tree(repo, m.group(3) or ""))
        elif m := _API.match(path):
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            self._with_repo(m.group(1), m.group(2) or "main", lambda repo: self._info(repo, blobs))
        elif m := _RESOLVE.match(path):
            self._with_repo(m.group(1), m.group(2), lambda repo: self._resolve(repo, m.group(3), method))
        else:
            self._error(404, "RepoNotFound", "not a hub endpoint")

    def _with_repo(self, repo_id: str, revision: str, answer) -> None:  # type: ignore[no-untyped-def]
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if repo.token and self.headers.get("authorization") != f"Bearer {repo.token}":
            if repo.gated:
                return self._error(403, "GatedRepo", "Access to this repo is restricted")
            return self._error(401, "RepoNotFound", "Repository not found")
        if revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        answer(repo)

    # --- answers -------------------------------------------------------------------------------
    def _info(self, repo: HubRepo, blobs: bool) -> None:
        siblings = []
        for f in repo.files.values():
            entry: dict[str, object] = {"rfilename": f.path}
            if blobs:
                entry.update(size=f.size, blobId=f.git_sha1)
                if f.lfs:
                    entry["lfs"] = {"size": f.size, "sha256": repo.sha256_of(f), "pointerSize": 134}
            siblings.append(entry)
        self._json({"id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.commit, "private": bool(repo.token),
                    "gated": repo.gated, "siblings": siblings, "tags": []})

    def _tree(self, repo: HubRepo, folder: str) -> None:
        entries = []
        for f in repo.files.values():
            if folder and not f.path.startswith(folder.rstrip("/") + "/"):
                continue
            entry: dict[str, object] = {"type": "file", "path": f.path, "size": f.size, "oid": f.git_sha1}
            if f.lfs:
                entry["lfs"] = {"oid": repo.sha256_of(f), "size": f.size, "pointerSize": 134}
            entries.append(entry)
        self._json(entries)

    def _resolve(self, repo: HubRepo, path: str, method: str) -> None:
        f = repo.files.get(path)
        if f is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist", commit=repo.commit)
        if path in self.hub.status:
            return self._error(self.hub.status[path], None, "injected failure")
        if method == "GET" and path in self.hub.fail_after_drop and path not in self.hub.drop_after:
            return self._error(self.hub.fail_after_drop[path], None, "injected failure after a dropped connection")
        start, end, partial = 0, f.size, False
        if method == "GET" and (m := _RANGE.match(self.headers.get("range", ""))):
            start, partial = int(m.group(1)), True
            end = int(m.group(2)) + 1 if m.group(2) else f.size
            if start >= f.size:
                return self._error(416, None, "range not satisfiable")
        self.send_response(206 if partial else 200)
        self.send_header("X-Repo-Commit", repo.commit)
        etag = repo.sha256_of(f) if f.lfs else f.git_sha1
        self.send_header("ETag", f'"{etag}"')
        if f.lfs:
            self.send_header("X-Linked-Etag", f'"{etag}"')
            self.send_header("X-Linked-Size", str(f.size))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{f.size}")
        self.end_headers()
        if method == "GET":
            self._send_body(f, start, end, cut=None if partial else self.hub.drop_after.pop(path, None))

    def _send_body(self, f: RepoFile, start: int, end: int, cut: int | None) -> None:
        stop = min(end, start + cut) if cut is not None else end
        for offset in range(start, stop, 1 << 20):
            self.wfile.write(f.read(offset, min(stop, offset + (1 << 20))))
        if cut is not None:  # promise Content-Length, send less, hang up: a dropped connection
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    def _json(self, data: object) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def split_gguf(source: Path, first_part: Path, n_parts: int) -> list[Path]:
    """Split ``source`` into ``n_parts`` files the way llama.cpp's gguf-split names them.

    Uses gguf-py's own split writer (``split_max_tensors``); returns the parts in order.
    """
    import gguf

    reader = gguf.GGUFReader(source, "r")
    per_part = -(-len(reader.tensors) // n_parts)
    writer = gguf.GGUFWriter(first_part, reader.fields["general.architecture"].contents(), split_max_tensors=per_part)
    for name, f in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        sub_type = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, f.contents(), f.types[0], sub_type=sub_type)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, int(t.n_bytes), raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data)
    writer.close()
    return sorted(first_part.parent.glob(f"{first_part.stem}-*-of-*.gguf"))


# --- fixtures (import them into a test module: ``from tests.hubserver import hub, gguf_repo``) ---
GGUF_REPO = "tester/SmolLM2-135M-Instruct-GGUF"
GGUF_FILE = "SmolLM2-135M-Instruct-Q4_K_M.gguf"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A fresh hub on 127.0.0.1; HF_ENDPOINT points at it, HF_TOKEN is unset."""
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server


@pytest.fixture
def gguf_repo(hub: HubServer, smollm2_path: Path) -> HubServer:
    """``GGUF_REPO``: the real SmolLM2 GGUF as Q4_K_M, a small Q8_0 decoy, a projector, a README."""
    hub.add_repo(
        GGUF_REPO,
        {
            GGUF_FILE: smollm2_path,
            "SmolLM2-135M-Instruct-Q8_0.gguf": b"GGUF not really",
            "mmproj-SmolLM2-f16.gguf": b"GGUF projector",
            "README.md": b"# test repo\n",
        },
    )
    return hub


@pytest.fixture(scope="session")
def smollm2_parts(smollm2_path: Path) -> list[Path]:
    """The SmolLM2 GGUF split into three parts (made once, kept in the test cache)."""
    from tests.conftest import cached_folder

    def parts(folder: Path) -> list[Path]:
        return sorted(folder.glob("SmolLM2-Q4_K_M-*-of-00003.gguf"))

    # all three parts appear at once
    return parts(cached_folder("smollm2-split", lambda folder: len(parts(folder)) == 3,
                               lambda scratch: split_gguf(smollm2_path, scratch / "SmolLM2-Q4_K_M.gguf", 3)))
