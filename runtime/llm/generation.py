"""The text pipeline between token bytes and the caller (what one generation produces,
:class:`~runtime.llm.types.Completion`, lives with the other model-facing types).

Token pieces arrive as bytes, and a multi-byte UTF-8 character may be split across two tokens:
:class:`TextAssembler` decodes incrementally and holds back any tail that could be the start of
a stop string, so the caller never sees text that a stop string later takes back.
"""

from __future__ import annotations

import codecs
from collections import deque
from collections.abc import Sequence

from runtime.config import LOOP_PERIODS, NEAR_REPEAT_NGRAM, NEAR_REPEAT_WINDOW
from runtime.llm.types import Completion as Completion  # llama_engine imports it from here


def repeated_block(tokens: Sequence[int], times: int, periods: tuple[int, int] = LOOP_PERIODS) -> int:
    """The length of a block of tokens that ends ``tokens`` and came ``times`` times in a row
    just before its end (a model in a loop), else 0. ``times`` below 2 never matches.

    Only periods whose token one period back equals the last token are compared, so the check
    costs a few list comparisons per generated token.
    """
    n = len(tokens)
    if times < 2:
        return 0
    shortest, longest = periods
    last = tokens[-1] if n else None
    for period in range(shortest, min(longest, n // times) + 1):
        if tokens[n - 1 - period] != last:
            continue
        block = list(tokens[n - period:])
        if all(list(tokens[n - (k + 1) * period:n - k * period]) == block for k in range(1, times)):
            return period
    return 0


NUMBER = -1  # what LoopGuard counts any number token as (token ids are never negative)


class LoopGuard:
    """Watches an answer token by token and says when it has fallen into a loop: the last block
    of tokens came ``times`` times in a row (:func:`repeated_block`), or at least ``share`` of the
    last ``window`` tokens end an ``n``-token run that came earlier in the answer, which catches
    a loop that drifts a little on each turn and so never repeats a block exactly.

    Only the answer counts, never the prompt: quoting a source is not a loop. Each token costs a
    set lookup and the few comparisons of :func:`repeated_block`.
    """

    def __init__(self, times: int, share: float, window: int = NEAR_REPEAT_WINDOW,
                 n: int = NEAR_REPEAT_NGRAM) -> None:
        self.times, self.share, self.window, self.n = times, share, window, n
        self.tokens: list[int] = []
        self._runs: set[tuple[int, ...]] = set()
        self._repeated: deque[bool] = deque(maxlen=window)
        self._count = 0  # how many of the flags in _repeated are true

    def add(self, token: int, piece: bytes = b"") -> str | None:
        """Add the next token (``piece``: its bytes); return what the loop is (for the log), or
        None while there is none. Every number counts as one token: a model counting up
        ("[5] is a ram module. [6] is a ram module. ..." or "[1], [2], [3], ...") loops as surely
        as one that repeats itself word for word."""
        tokens = self.tokens
        tokens.append(NUMBER if piece.strip().isdigit() else token)
        block = repeated_block(tokens, self.times)
        if block:
            return f"repeated the same {block} tokens {self.times} times in a row"
        if self.share <= 0 or len(tokens) < self.n:
            return None
        run = tuple(tokens[-self.n:])
        seen = run in self._runs
        self._runs.add(run)
        if len(self._repeated) == self.window:
            self._count -= self._repeated[0]
        self._repeated.append(seen)
        self._count += seen
        if len(self._repeated) == self.window and self._count >= self.share * self.window:
            return (f"repeated itself with small changes ({self._count} of its last {self.window} tokens "
                    f"end a {self.n}-token run it had written before)")
        return None

    @property
    def repeated_share(self) -> float:
        """The share of the last ``window`` tokens that end a run seen before (0 until full)."""
        return self._count / self.window if len(self._repeated) == self.window else 0.0


class TextAssembler:
    """Turns token bytes into text pieces that are safe to show, honouring stop strings.

    Feed each token's bytes to :meth:`feed`; it returns the text that can be shown now (maybe
    ``""``). :attr:`stopped` becomes true when a stop string appears; the stop string and
    everything after it are dropped. :meth:`finish` returns what was held back at the end.
    """

    def __init__(self, stop: tuple[str, ...] | list[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(s for s in stop if s)
        self._pending = ""
        self.stopped = False
        self.text = ""  # everything emitted so far

    def feed(self, data: bytes) -> str:
        """Add one token's bytes; return the text that can be emitted now."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(data)
        return self._release(final=False)

    def finish(self) -> str:
        """Flush the decoder and whatever was held back (no stop string matched it)."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(b"", final=True)
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        cut = self._earliest_stop()
        if cut is not None:
            self.stopped = True
            out, self._pending = self._pending[:cut], ""
        elif final:
            out, self._pending = self._pending, ""
        else:
            keep = self._partial_stop_suffix()
            split = len(self._pending) - keep
            out, self._pending = self._pending[:split], self._pending[split:]
        self.text += out
        return out

    def _earliest_stop(self) -> int | None:
        hits = [i for i in (self._pending.find(s) for s in self._stop) if i >= 0]
        return min(hits) if hits else None

    def _partial_stop_suffix(self) -> int:
        """Length of the longest tail of the pending text that begins some stop string."""
        best = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(self._pending)), best, -1):
                if self._pending.endswith(stop[:n]):
                    best = n
                    break
        return best
