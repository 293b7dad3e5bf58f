"""What one generation produces, and the text pipeline between token bytes and the caller.

Token pieces arrive as bytes, and a multi-byte UTF-8 character may be split across two tokens:
:class:`TextAssembler` decodes incrementally and holds back any tail that could be the start of
a stop string, so the caller never sees text that a stop string later takes back.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class Completion:
    """The result of one generation.

    ``finish_reason`` is ``"stop"`` (end-of-generation token or a stop string) or ``"length"``
    (``max_tokens`` reached or the context window full). ``cached_tokens`` is how many prompt
    tokens were reused from the previous call's KV cache instead of being processed again.
    ``draft_tokens`` were guessed by prompt lookup and ``accepted_tokens`` of them kept.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    finish_reason: str
    prompt_seconds: float
    generation_seconds: float
    draft_tokens: int = 0  # prompt-lookup tokens drafted, and those the model agreed with
    accepted_tokens: int = 0
    threads: int = 0  # the threads that generated it (0: not known, a remote model)

    @property
    def tokens_per_second(self) -> float:
        """Generation speed (completion tokens over generation seconds)."""
        return self.completion_tokens / self.generation_seconds if self.generation_seconds > 0 else 0.0


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
