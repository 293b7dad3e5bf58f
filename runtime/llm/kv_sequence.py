"""Which tokens a context's KV cache holds, and the decodes and removals that change them.

llama.cpp keeps the keys and values but not the token ids; :class:`KVSequence` keeps both in
step, so the engine can reuse a shared prefix, drop a rejected draft, and hand a whole prompt
over to another context of the same model file (the hybrid: the prompt decoded on the mapped
weights, generation on the repacked ones, :mod:`runtime.llm.llama_engine`).
"""

from __future__ import annotations

from collections.abc import Sequence

from runtime.errors import GenerationError
from runtime.llm.native import NativeContext


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class KVSequence:
    """Sequence 0 of ``context``: the tokens its KV cache holds, in order."""

    def __init__(self, context: NativeContext) -> None:
        self.context = context
        self._tokens: list[int] = []

    @property
    def tokens(self) -> tuple[int, ...]:
        return tuple(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def decode(self, tokens: Sequence[int]) -> None:
        """Decode ``tokens`` after those held, in ``n_batch`` chunks; logits for the last.
        A failed decode empties the cache and raises :class:`GenerationError`."""
        step = self.context.n_batch
        for start in range(0, len(tokens), step):
            self._decode(tokens[start:start + step], all_logits=False)

    def decode_all(self, tokens: Sequence[int]) -> None:
        """Decode ``tokens`` (at most ``n_outputs``) in one batch, with logits for each."""
        self._decode(tokens, all_logits=True)

    def _decode(self, chunk: Sequence[int], *, all_logits: bool) -> None:
        try:
            self.context.decode(chunk, len(self._tokens), all_logits=all_logits)
        except GenerationError:
            self.forget()
            raise
        self._tokens.extend(chunk)

    def drop_after(self, keep: int) -> None:
        """Remove the entries from position ``keep`` on (a rejected draft, a probe's tokens)."""
        if keep < len(self._tokens):
            if not self.context.remove_from(keep):
                self.forget()
                raise GenerationError("llama.cpp could not remove tokens from the KV cache")
            del self._tokens[keep:]

    def forget(self) -> None:
        """Empty the cache."""
        self.context.clear()
        self._tokens = []

    def reuse_prefix(self, tokens: Sequence[int], n_swa: int) -> int:
        """Keep the held prefix shared with ``tokens`` (at least one token left to decode); how
        many tokens are kept. ``n_swa``: the model's sliding window (0: none)."""
        keep = min(common_prefix(self._tokens, tokens), len(tokens) - 1)
        if keep < len(self._tokens):
            if keep == 0 or not self.context.remove_from(keep):
                self.forget()
                return 0
            del self._tokens[keep:]
        if keep > 0:
            # a sliding-window cache may have dropped the positions the tail must attend to
            pos_min = self.context.first_position()
            if pos_min < 0 or pos_min > max(0, keep - max(1, n_swa)):
                self.forget()
                return 0
        return keep

    def state(self) -> bytearray:
        """The KV state of the held tokens (``llama_state_seq_get_data``)."""
        return self.context.get_state()

    def restore(self, tokens: Sequence[int], state: bytes | bytearray) -> bool:
        """Hold ``tokens`` from their saved ``state``; ``False`` (and empty) when llama.cpp
        refuses it."""
        if self.context.set_state(state):
            self._tokens = list(tokens)
            return True
        self._tokens = []
        return False

    def take_over(self, other: KVSequence) -> bool:
        """Hold what ``other`` holds, copied from its KV cache (a context of the same model
        file and context settings); ``False`` (and empty) when llama.cpp refuses the state."""
        return self.restore(other._tokens, other.state())
