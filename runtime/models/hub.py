"""Downloads from the Hugging Face hub: pre-quantized GGUF files and safetensors checkpoints.

Everything goes through ``huggingface_hub``, so its conventions hold: ``HF_TOKEN`` for gated
and private repos, ``HF_ENDPOINT`` for mirrors, ``HF_HOME``/``HF_HUB_CACHE`` for the cache.
``huggingface_hub`` reads those variables once, at import; rt reads them at call time so a
changed environment (a test, a long-lived process) is honoured.

GGUF files are downloaded straight into the destination folder (the model registry), not the
hub cache, so a 4 GB model does not take 8 GB. The partial file sits beside the destination
under a hidden name tied to the file's sha256, and a rerun resumes it with an HTTP Range request
(``huggingface_hub`` 2.x deletes its own partial files when a download fails, so it resumes only
within one call). Every file is checked against the size and sha256 the hub reports. Split GGUFs
(``-00001-of-00003.gguf``) are downloaded part by part and merged into one file.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runtime.diskfull import disk_full_errors
from runtime.errors import ChecksumError, ConfigError, DownloadError, RtError
from runtime.fsutil import ensure_free_space, human_bytes, replace_in_use
from runtime.models.hub_files import PICKLE_SUFFIXES, SPLIT_RE, HubFile, looks_like_repo_id, pick_gguf, quant_of
from runtime.models.link import link_or_copy
from runtime.models.registry import sha256_file
from runtime.redact import redact_credentials, redact_http_logs

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
# What a checkpoint conversion needs; nothing else is downloaded (no .bin/.pt duplicates, no ONNX).
CHECKPOINT_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
)
DUPLICATE_WEIGHT_PATTERNS = ("consolidated*.safetensors",)


@dataclass(frozen=True)
class GGUFDownload:
    """A GGUF fetched from the hub: where it is and what it was."""

    path: Path
    repo: str
    commit: str
    files: tuple[str, ...]  # the repo files it came from (several for a split GGUF)
    quantization: str
    size: int
    sha256: str

    @property
    def source(self) -> str:
        """``hf:OWNER/REPO/FILE@COMMIT``, the registry's record of where it came from."""
        return f"hf:{self.repo}/{self.files[0]}@{self.commit[:12]}"


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` (read now), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_cache_dir() -> Path:
    """The hub cache: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def _tqdm_class(progress: bool) -> Any:
    from huggingface_hub.utils import tqdm as hf_tqdm

    if progress:
        return hf_tqdm

    class _Silent(hf_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _Silent


# --- errors ----------------------------------------------------------------------------------
@contextlib.contextmanager
def hub_errors(repo: str) -> Iterator[None]:
    """Turn ``huggingface_hub``/``httpx`` failures into :class:`DownloadError` with a next step."""
    import httpx2
    from huggingface_hub import errors as hf

    endpoint = redact_credentials(hub_endpoint())  # HF_ENDPOINT may hold a mirror's password
    redact_http_logs()
    try:
        yield
    except RtError:
        raise
    except hf.GatedRepoError as exc:
        raise DownloadError(
            f"{repo} on {endpoint} is gated (HTTP {_status(exc)}): you must accept its terms",
            hint="accept them on the repo's page, then set HF_TOKEN to a token of that account",
        ) from exc
    except hf.RevisionNotFoundError as exc:
        raise DownloadError(f"{repo} on {endpoint} has no such revision", hint="check --revision") from exc
    except hf.RemoteEntryNotFoundError as exc:
        raise DownloadError(f"a file of {repo} is missing on {endpoint} (HTTP 404)", hint="retry later") from exc
    except hf.RepositoryNotFoundError as exc:
        status = _status(exc)
        raise DownloadError(
            f"{repo} was not found on {endpoint} (HTTP {status})",
            hint="check the OWNER/NAME spelling; for a private or gated repo set HF_TOKEN"
            + (" (the token sent was refused)" if status == 401 and os.environ.get("HF_TOKEN") else ""),
        ) from exc
    except hf.HfHubHTTPError as exc:
        status = _status(exc)
        hint = {
            401: "set HF_TOKEN to a valid token",
            403: "your HF_TOKEN has no access to this repo; request access on its page",
        }.get(status or 0, "retry later; if it persists, check HF_ENDPOINT")
        raise DownloadError(f"the hub at {endpoint} answered HTTP {status} for {repo}", hint=hint) from exc
    except (httpx2.TransportError, hf.OfflineModeIsEnabled, hf.LocalEntryNotFoundError) as exc:
        raise DownloadError(
            f"cannot reach the hub at {endpoint} ({type(exc).__name__}: {redact_credentials(str(exc))})",
            hint="check your connection; set HF_ENDPOINT for a mirror; rerun to resume",
        ) from exc


def _host(url: str) -> tuple[str | None, int | None]:
    """Host and port, without the credentials a netloc may carry."""
    parts = urlsplit(url)
    return parts.hostname, parts.port


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


# --- listing and choosing --------------------------------------------------------------------
def list_repo_files(repo: str, *, revision: str = "main", token: str | None = None) -> tuple[str, list[HubFile]]:
    """The repo's commit hash and files, with the sizes and sha256 sums the hub reports."""
    from huggingface_hub import HfApi

    _check_repo_id(repo)
    with hub_errors(repo):
        info = HfApi(endpoint=hub_endpoint()).model_info(repo, revision=revision, files_metadata=True, token=token)
    files = [
        HubFile(
            path=s.rfilename,
            size=s.lfs.size if s.lfs else s.size,
            sha256=s.lfs.sha256 if s.lfs else None,
        )
        for s in info.siblings or []
    ]
    return info.sha or revision, files


def _check_repo_id(repo: str) -> None:
    if not looks_like_repo_id(repo):
        raise ConfigError(
            f"{repo!r} is not a hub repo id", hint="write it as OWNER/NAME, e.g. bartowski/Qwen2.5-7B-Instruct-GGUF"
        )


# --- downloading -----------------------------------------------------------------------------
def download_gguf(
    repo: str,
    quant: str,
    dest_dir: Path,
    *,
    filename: str | None = None,
    revision: str = "main",
    token: str | None = None,
    progress: bool = False,
) -> GGUFDownload:
    """Download the ``quant`` GGUF of ``repo`` into ``dest_dir`` (as ``filename`` if given).

    Resumes a partial file left by an interrupted run, verifies every part's size and sha256
    (raising :class:`ChecksumError` and deleting the bad file), and merges a split GGUF into one
    file. Nothing appears under the final name unless it verified.
    """
    commit, files = list_repo_files(repo, revision=revision, token=token)
    parts = pick_gguf(repo, files, quant)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / (filename or Path(SPLIT_RE.sub(".gguf", parts[0].path)).name)
    needed = sum(p.size or 0 for p in parts) * (2 if len(parts) > 1 else 1)
    ensure_free_space(dest_dir, needed, f"downloading {final.name}")
    local = [_fetch_verified(repo, commit, part, final, token=token, progress=progress) for part in parts]
    if len(local) == 1:
        replace_in_use(local[0], final)  # a held final keeps the download beside it (NAME.new.gguf)
        digest = parts[0].sha256 or sha256_file(final)
    else:
        from runtime.models.gguf_merge import merge_split_gguf

        merge_split_gguf(local, final)
        for path in local:
            path.unlink()
        digest = sha256_file(final)
    return GGUFDownload(
        path=final,
        repo=repo,
        commit=commit,
        files=tuple(p.path for p in parts),
        quantization=quant_of(parts[0].path) or quant.upper(),
        size=final.stat().st_size,
        sha256=digest,
    )


def partial_path(final: Path, part: HubFile) -> Path:
    """Where the download of ``part`` for ``final`` is kept until it verifies (survives reruns)."""
    tag = (part.sha256 or "nosha")[:16]
    return final.with_name(f".{final.name}.{Path(part.path).name}.{tag}.part")


def _fetch_verified(repo: str, commit: str, part: HubFile, final: Path, *, token: str | None, progress: bool) -> Path:
    partial = partial_path(final, part)
    if part.size is not None and partial.exists() and partial.stat().st_size > part.size:
        partial.unlink()  # longer than the hub's file: not ours to resume
    if not _reuse_hub_cache(repo, commit, part, partial):
        _fetch(repo, commit, part, partial, token=token, progress=progress)
    size = partial.stat().st_size
    digest = sha256_file(partial) if part.sha256 else None
    if (part.size is not None and size != part.size) or (part.sha256 and digest != part.sha256):
        partial.unlink()
        raise ChecksumError(
            f"{part.path} from {repo} failed verification: got {human_bytes(size)} sha256 {digest or '?'}, "
            f"the hub reports {human_bytes(part.size or 0)} sha256 {part.sha256}; the download was deleted",
            hint="run the command again; if it fails again the hub's copy is damaged",
        )
    if not part.sha256:
        logger.warning("%s has no sha256 on the hub; only its size was checked", part.path)
    return partial


def _reuse_hub_cache(repo: str, commit: str, part: HubFile, partial: Path) -> bool:
    """Link (or copy) the file from the hub cache when another tool already downloaded it."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo, part.path, cache_dir=hub_cache_dir(), revision=commit)
    if not isinstance(cached, str) or (part.size is not None and os.path.getsize(cached) != part.size):
        return False
    logger.info("using %s from the hub cache", part.path)
    link_or_copy(Path(cached), partial)  # verified like a download before it is used
    return True


def _fetch(repo: str, commit: str, part: HubFile, partial: Path, *, token: str | None, progress: bool) -> None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    endpoint = hub_endpoint()
    url = hf_hub_url(repo, part.path, revision=commit, endpoint=endpoint)
    with hub_errors(repo):
        meta = get_hf_file_metadata(url, token=token, endpoint=endpoint)
        headers = build_hf_headers(token=token)
        location = meta.location or url
        if _host(location) != _host(endpoint):
            headers.pop("authorization", None)  # never send the token to a CDN
        resume = partial.stat().st_size if partial.exists() else 0
        if resume:
            logger.info("resuming %s at %s", part.path, human_bytes(resume))
        with (disk_full_errors(partial, f"downloading {part.path} from {repo}", expected=part.size, kept=True),
              open(partial, "ab") as fh):
            try:
                http_get(
                    location,
                    fh,
                    resume_size=resume,
                    headers=headers,
                    expected_size=part.size,
                    displayed_filename=Path(part.path).name,
                    tqdm_class=_tqdm_class(progress),
                )
            except OSError as exc:
                if "Consistency check failed" not in str(exc):
                    raise
                # Wrong length: the partial cannot be trusted for a resume.
                fh.close()
                partial.unlink()
                raise ChecksumError(
                    f"{part.path} from {repo}: {redact_credentials(str(exc).splitlines()[0])}",
                    hint="run the command again",
                ) from exc


def download_checkpoint(
    repo: str, *, revision: str = "main", token: str | None = None, progress: bool = False
) -> Path:
    """Fetch a safetensors checkpoint (weights, index, config, tokenizer) into the hub cache.

    Returns the snapshot folder, ready for :func:`convert.pipeline.convert_checkpoint`. Repos
    that only ship pickle weights (``.bin``/``.pt``) are refused: loading them runs code.
    """
    from huggingface_hub import snapshot_download

    _, files = list_repo_files(repo, revision=revision, token=token)
    names = [f.path for f in files]
    if not any(n.endswith(".safetensors") for n in names):
        pickles = [n for n in names if n.lower().endswith(PICKLE_SUFFIXES)]
        if pickles:
            raise DownloadError(
                f"{repo} has only pickle weights ({', '.join(pickles[:3])}), no .safetensors",
                hint="pickle files can run code when loaded, so rt does not read them; look for a "
                "safetensors or GGUF version of this model on the hub",
            )
        raise DownloadError(f"{repo} has no .safetensors weights", hint="for a GGUF repo use `rt convert --hf`")
    # Mistral repos ship consolidated.safetensors (the whole model again, 14.5 GB for 7B) beside
    # the indexed HF shards; the converter reads the shards, so the duplicate is never fetched.
    sharded = any(n.endswith(".safetensors.index.json") for n in names)
    ignore = list(DUPLICATE_WEIGHT_PATTERNS) if sharded else []

    def needed(path: str) -> bool:
        name = Path(path).name
        return any(fnmatch.fnmatch(name, p) for p in CHECKPOINT_PATTERNS) and not any(
            fnmatch.fnmatch(name, p) for p in ignore
        )

    wanted = [f for f in files if needed(f.path)]
    cache = hub_cache_dir()
    total = sum(f.size or 0 for f in wanted)
    ensure_free_space(cache, total, f"downloading {repo}")
    repo_cache = cache / f"models--{repo.replace('/', '--')}"  # huggingface_hub's folder for the repo
    with disk_full_errors(repo_cache, f"downloading {repo}", expected=total, kept=True), hub_errors(repo):
        folder = snapshot_download(
            repo,
            revision=revision,
            allow_patterns=list(CHECKPOINT_PATTERNS),
            ignore_patterns=ignore or None,
            cache_dir=cache,
            endpoint=hub_endpoint(),
            token=token,
            tqdm_class=_tqdm_class(progress),
        )
    return Path(folder)


def checkpoint_folder(spec: str | Path, *, progress: bool = False) -> Path:
    """The checkpoint folder ``spec`` names: a local folder as given, else the snapshot of the
    hub repo ``spec`` (see :func:`download_checkpoint`)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    return download_checkpoint(str(spec), progress=progress)
