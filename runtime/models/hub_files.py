"""Names on the Hugging Face hub: the shape of a repo id, the weight files rt never reads
(pickles), and which GGUF in a repo holds which quantization, read from the file names.

Repos of pre-quantized models (bartowski/..., TheBloke/..., the model makers' own ``-GGUF``
repos) name each file after its quantization: ``Qwen2.5-7B-Instruct-Q4_K_M.gguf``, sometimes
split in parts (``...-Q8_0-00001-of-00002.gguf``) or in one folder per quantization.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import DownloadError

SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
# Weight files that are Python pickles: loading one can run code, so rt never reads them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def looks_like_repo_id(text: str) -> bool:
    """``OWNER/NAME`` as the hub spells repo ids (letters, digits, ``_ . -``)."""
    return _REPO_ID.fullmatch(text) is not None


@dataclass(frozen=True)
class HubFile:
    """One file of a hub repo, as the hub describes it (:func:`runtime.models.hub.list_repo_files`)."""

    path: str
    size: int | None
    sha256: str | None  # only LFS files carry one


@functools.lru_cache(maxsize=1)
def _known_quants() -> tuple[str, ...]:
    import gguf

    names = {t.name.removeprefix("MOSTLY_").removeprefix("ALL_") for t in gguf.LlamaFileType}
    names |= {t.name for t in gguf.GGMLQuantizationType}
    names.discard("GUESSED")
    return tuple(sorted(names, key=len, reverse=True))


def quant_of(filename: str) -> str | None:
    """The quantization a GGUF file name announces (``...-Q4_K_M.gguf`` -> ``Q4_K_M``), else None."""
    stem = SPLIT_RE.sub(".gguf", Path(filename).name)
    for quant in _known_quants():  # longest first: Q4_K_M before Q4_K
        if re.search(rf"(?<![A-Za-z0-9]){quant}(?![A-Za-z0-9])", stem, re.IGNORECASE):
            return quant
    return None


def pick_gguf(repo: str, files: list[HubFile], quant: str) -> list[HubFile]:
    """The file (or the ordered parts of a split file) holding ``quant``.

    Raises :class:`DownloadError` naming the quantizations the repo has when ``quant`` is missing.
    """
    ggufs = [f for f in files if f.path.lower().endswith(".gguf") and "mmproj" not in f.path.lower()]
    if not ggufs:
        hint = "for a safetensors checkpoint use `rt convert --from OWNER/REPO`"
        raise DownloadError(f"{repo} has no .gguf files", hint=hint)
    groups: dict[str, list[HubFile]] = {}
    for f in ggufs:
        groups.setdefault(SPLIT_RE.sub(".gguf", f.path), []).append(f)
    wanted = quant.upper()
    matches = {key: parts for key, parts in groups.items() if quant_of(key) == wanted}
    if not matches:
        present = sorted({q for q in map(quant_of, groups) if q})
        raise DownloadError(
            f"{repo} has no {wanted} GGUF; it has: "
            + (", ".join(present) or "only files without a quantization in the name"),
            hint=f"try --quant {_preferred(present)}" if present else "name a file-level quant the repo has",
        )
    # Several candidates (an imatrix variant, a subfolder copy): the name that ends in the quant wins,
    # then the shortest path.
    key = min(matches, key=lambda k: (not k.upper().endswith(f"{wanted}.GGUF"), k.count("/"), len(k)))
    parts = sorted(matches[key], key=lambda f: f.path)
    _check_parts(repo, key, parts)
    return parts


def _preferred(present: list[str]) -> str:
    for q in ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"):
        if q in present:
            return q
    return present[0]


def _check_parts(repo: str, key: str, parts: list[HubFile]) -> None:
    found = [SPLIT_RE.search(p.path) for p in parts]
    if len(parts) == 1 and found[0] is None:
        return
    total = int(found[0].group(2)) if found[0] else 0
    numbers = [int(m.group(1)) for m in found if m]
    if numbers != list(range(1, total + 1)):
        raise DownloadError(
            f"split GGUF {key} in {repo} is incomplete: parts {numbers} of {total}",
            hint="pick another --quant, or report it to the repo's owner",
        )
