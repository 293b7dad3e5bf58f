"""The sampler chain for one generation: an optional repetition penalty, then greedy at
temperature 0, else top-k, top-p, temperature and a seeded draw (llama.cpp's own samplers, so
sampling costs no Python per vocabulary entry)."""

from __future__ import annotations

from types import TracebackType

from llama_cpp import llama_cpp as L

from runtime.config import GenerateOptions


class Sampler:
    """A llama.cpp sampler chain built from :class:`GenerateOptions`; free it with :meth:`close`
    (or use it as a context manager)."""

    def __init__(self, options: GenerateOptions, n_vocab: int = 0) -> None:
        params = L.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = L.llama_sampler_chain_init(params)
        if options.repeat_penalty != 1.0 and options.penalty_last_n != 0:
            # it counts the tokens the chain accepts (the answer so far), never the prompt's
            self._add(L.llama_sampler_init_penalties(n_vocab, options.penalty_last_n,
                                                     options.repeat_penalty, 0.0, 0.0))
        if options.temperature <= 0:
            self._add(L.llama_sampler_init_greedy())
            return
        if options.top_k > 0:
            self._add(L.llama_sampler_init_top_k(options.top_k))
        if options.top_p < 1:  # top_p 0 keeps only the most likely token (min_keep 1)
            self._add(L.llama_sampler_init_top_p(options.top_p, 1))
        self._add(L.llama_sampler_init_temp(options.temperature))
        self._add(L.llama_sampler_init_dist(options.seed & 0xFFFFFFFF))

    def _add(self, sampler: object) -> None:
        L.llama_sampler_chain_add(self._chain, sampler)  # the chain owns it from here

    def sample(self, ctx: object) -> int:
        """Sample (and accept) the next token from the last output row of ``ctx``."""
        return int(L.llama_sampler_sample(self._chain, ctx, -1))

    def sample_at(self, ctx: object, index: int) -> int:
        """Sample (and accept) a token from the output row of batch position ``index``."""
        return int(L.llama_sampler_sample(self._chain, ctx, index))

    def close(self) -> None:
        if self._chain is not None:
            L.llama_sampler_free(self._chain)
            self._chain = None

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
