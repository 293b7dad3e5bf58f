"""The llama.cpp engine: the policy over the native layer (:mod:`runtime.llm.native`).

The model is memory-mapped (llama.cpp's MMAP load mode) with ``use_extra_bufts = False``: the
CPU "extra buffer types" copy the weights into anonymous memory and, on some CPUs, crash in
their AMX kernels. With ``repack`` the engine is the hybrid: a second, repacked load of the
same file with its own context generates, after the prompt is decoded on the mapped weights
and its KV state handed over (:meth:`LlamaEngine._prefill`); the copy loads in a thread while
the prompt is built and decoded (:mod:`runtime.llm.repacked_load`). Only load with
``repack=True`` after a child process has shown it works (:mod:`runtime.llm.repack_choice`).

The engine remembers which tokens its KV caches hold (:class:`runtime.llm.kv_sequence.KVSequence`);
a new prompt that starts with the same tokens (the same system prompt, a growing chat) reuses
them and decodes only the new tail. Most callers want :class:`runtime.llm.model.Model`, which
wraps this engine in a child process. It satisfies the :class:`runtime.llm.types.Engine` protocol.
"""
from __future__ import annotations

import logging
import os
import time
from array import array
from collections.abc import Generator, Sequence
from pathlib import Path

from runtime import env
from runtime.config import GenerateOptions, LoadOptions, output_rows
from runtime.errors import ContextOverflowError, GenerationError, InputError
from runtime.llm import prefix_cache, row_cost
from runtime.llm.chat_template import ChatPrompt
from runtime.llm.generation import Completion, LoopGuard, TextAssembler
from runtime.llm.kv_sequence import KVSequence, common_prefix
from runtime.llm.llama_native import extra_buffer_types, ggml_kv_type, init_backend
from runtime.llm.lookup import Drafter
from runtime.llm.native import PARSED_SPECIAL, ContextParams, NativeContext, NativeModel
from runtime.llm.repacked_load import RepackedLoad
from runtime.llm.sampling import Sampler
from runtime.llm.threads import sample_generation_threads
from runtime.llm.yes_no import NO_WORDS, YES_WORDS, YesNo, from_logits, spelling_tokens

logger = logging.getLogger(__name__)


class LlamaEngine:
    """llama.cpp model + context for one GGUF file, in this process.

    Raises :class:`ModelLoadError` when llama.cpp refuses the file or the context, and
    :class:`GenerationError` when it fails to tokenize or decode afterwards. The GGUF
    should have been checked first (:func:`runtime.models.gguf_file.inspect_gguf`): llama.cpp itself
    may crash on a malformed file.
    """

    def __init__(self, path: str | Path, options: LoadOptions = LoadOptions()) -> None:
        init_backend(echo_log=options.verbose or env.debug())
        self.path = Path(path)
        self.options = options
        self._contexts: list[NativeContext] = []
        self._models: list[NativeModel] = []
        self._loading: RepackedLoad | None = None
        self.repack_failure: str | None = None  # why the hybrid fell back to the mapped weights
        try:
            self._model = NativeModel(self.path)  # mapped: use_extra_bufts off
            self._models.append(self._model)
            params = self._context_params()
            self._seq = KVSequence(self._create_context(self._model, params))
            # the hybrid: a second model of the same file, repacked, and its own context, on
            # which every token after the prompt's last is decoded (one at a time); it loads in a
            # thread and takes over ``_gen`` when the first prompt is decoded
            self._gen = self._seq
            if options.repack:
                logger.debug("repacking weights into llama.cpp's extra buffer types: %s",
                             ", ".join(extra_buffer_types()) or "none listed")
                self._loading = RepackedLoad(self.path, params)
        except BaseException:
            self.close()
            raise
        self.n_ctx_train = self._model.n_ctx_train
        self.pid = os.getpid()
        self.last_drafts: list[tuple[int, int]] = []  # prompt lookup's (drafted, accepted) per batch
        self._row_cost: float | None = None  # the measured lookup row cost, once known
        self._yes_no_ids: tuple[list[int], list[int]] | None = None  # tokens spelling yes, no

    # --- loading ----------------------------------------------------------------------------
    def _context_params(self) -> ContextParams:
        opts = self.options
        n_batch = max(1, min(opts.n_batch, opts.n_ctx))
        n_threads = opts.n_threads
        if opts.threads is None:  # generation avoids the cores other processes keep busy
            n_threads = sample_generation_threads(opts.n_threads)
        # rt reads logits for one token per batch, or for each token of a prompt-lookup draft:
        # reserving 1 + max_draft rows instead of n_batch shrinks the compute buffer by about
        # n_batch * n_vocab * 4 bytes (SmolLM2: 102 -> 16 MiB; 9 rows add 1.7 MiB)
        return ContextParams(n_ctx=opts.n_ctx, n_batch=n_batch, n_outputs=output_rows(opts.max_draft, n_batch),
                             n_threads=n_threads, n_threads_batch=opts.n_threads,
                             kv_type=ggml_kv_type(opts.kv_type),
                             flash_attn=opts.kv_type != "f16")  # a quantized V cache needs it

    def _create_context(self, model: NativeModel, params: ContextParams) -> NativeContext:
        context = NativeContext(model, params)
        self._contexts.append(context)
        self.n_threads, self.n_threads_batch = context.threads
        self.n_ctx = context.n_ctx
        self.n_batch = params.n_batch
        self.n_outputs = params.n_outputs
        return context

    def _await_repacked(self) -> None:
        """Wait for the repacked copy (loading since the engine opened) and generate on it from
        now on, or on the mapped weights if it failed."""
        loading, self._loading = self._loading, None
        if loading is None:
            return
        context = loading.wait()
        if context is None or loading.model is None:
            self.repack_failure = loading.failure
            loading.close()
            return
        self._models.append(loading.model)
        self._contexts.append(context)
        if context.threads != (self.n_threads, self.n_threads_batch):  # _use_threads ran meanwhile
            context.set_threads(self.n_threads, self.n_threads_batch)
        self._gen = KVSequence(context)

    @property
    def hybrid(self) -> bool:
        """Whether prompts are decoded on the mapped weights and answers on repacked ones."""
        return self._loading is not None or self._gen is not self._seq

    @property
    def cached_tokens(self) -> tuple[int, ...]:
        """The tokens the KV cache that generates holds, in order (the last prompt and what was
        generated)."""
        return self._gen.tokens

    def clear_cache(self) -> None:
        """Empty the KV caches: the next prompt is decoded from its first token."""
        self._seq.forget()
        self._gen.forget()

    # --- tokens -----------------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        """Token ids of ``text``; special tokens written in it (``<|im_start|>``) are parsed,
        except in the messages' own text of a :class:`ChatPrompt`."""
        if parse_special and isinstance(text, ChatPrompt) and text.plain:
            return self._tokenize_chat(text, add_special)
        return self._tokenize(text, add_special, parse_special)

    def _tokenize_chat(self, prompt: ChatPrompt, add_special: bool) -> list[int]:
        """The template's text with special tokens parsed, the messages' text without.

        When the messages hold no special token's text, the prompt is tokenized whole, as any
        text is: the same tokens as before, so answers and saved prefixes do not change
        (tokenized piece by piece, a SentencePiece vocab may split a piece's edge differently).
        """
        whole = self._tokenize(prompt, add_special, True)
        pieces: list[int] = []
        for n, (piece, is_message) in enumerate(prompt.segments()):
            pieces += self._tokenize(piece, add_special and n == 0, not is_message)
        if self._control_tokens(whole) == self._control_tokens(pieces):
            return whole
        logger.debug("the messages hold special tokens' text; tokenized as plain text")
        return pieces

    def _control_tokens(self, tokens: Sequence[int]) -> list[int]:
        """The tokens of ``tokens`` that only parsing special tokens produces."""
        return [t for t in tokens if self._model.token_attr(t) & PARSED_SPECIAL]

    def _tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        return self._model.tokenize(str(text).encode("utf-8"), add_special, parse_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens`` (special tokens rendered as written)."""
        if not tokens:
            return ""
        return self._model.detokenize(tokens).decode("utf-8", errors="replace")

    def special_tokens(self) -> dict[str, str]:
        """Text of the BOS and EOS tokens (for chat templates); ``""`` when the vocab has none."""
        return {"bos_token": self._model.token_text(self._model.bos),
                "eos_token": self._model.token_text(self._model.eos)}

    def prompt_tokens(self, prompt: str) -> list[int]:
        """Tokens of an already-templated prompt, with BOS added once if the model wants it."""
        tokens = self.tokenize(prompt, add_special=True)
        if len(tokens) >= 2 and tokens[0] == tokens[1] == self._model.bos:
            tokens = tokens[1:]  # the template wrote BOS itself
        return tokens

    # --- decoding ---------------------------------------------------------------------------
    def _load_prefix(self, tokens: Sequence[int]) -> int:
        """Load the saved prefix state that ``tokens`` share (at least one token left to decode)
        into the prompt context; how many tokens it holds, 0 when there is none to use."""
        path = prefix_cache.cache_file(self.path, self.options)
        found = prefix_cache.read(path)
        if found is None:
            return 0
        saved, state = found
        shared = min(common_prefix(saved, tokens), len(tokens) - 1)
        if shared < prefix_cache.MIN_SHARED_TOKENS:
            return 0
        if not self._seq.restore(saved, state):
            logger.debug("ignoring prefix cache %s: llama.cpp refused its state", path)
            return 0
        if shared < len(saved):
            self._seq.drop_after(shared)
            self._save_prefix()
        return shared

    def _save_prefix(self) -> None:
        state = self._seq.state()
        if state:
            prefix_cache.write(prefix_cache.cache_file(self.path, self.options), list(self._seq.tokens), state)

    def _fill(self, tokens: Sequence[int]) -> int:
        """Bring the prompt context's KV cache to ``tokens`` (reusing the cached or saved prefix
        they share), with the logits of the last one ready; how many tokens were reused."""
        seq = self._seq
        cached = seq.reuse_prefix(tokens, self._model.n_swa)
        fresh = not len(seq) and self.options.prefix_cache
        if fresh:
            cached = self._load_prefix(tokens)
        seq.decode(tokens[cached:])
        if fresh and cached == 0:
            self._save_prefix()  # the whole prompt; the next run keeps the part it shares
        return cached

    def _prefill(self, tokens: Sequence[int]) -> int:
        """Bring the generating context to ``tokens``, the logits of the last one ready; how
        many tokens were reused rather than decoded.

        The hybrid decodes all but the last token on the mapped weights (batched prompt
        processing is faster there), hands that KV state to the repacked context, and decodes
        the last token there: the first answer token comes from the repacked weights' logits,
        as every later one does. A generating context that already holds all but the last token
        (the same prompt again) decodes only that one.
        """
        early = None
        if self._loading is not None:  # the first prompt: decode it while the copy loads
            early = self._fill(tokens[:-1]) if len(tokens) > 1 else None
            self._await_repacked()
        if not self.hybrid:
            if early is None:
                return self._fill(tokens)
            self._seq.decode(tokens[-1:])
            return early
        gen, head = self._gen, tokens[:-1]
        kept = gen.reuse_prefix(tokens, self._model.n_swa)
        if kept < len(head):
            cached = early if early is not None else self._fill(head)
            started = time.perf_counter()
            # the whole sequence: llama.cpp restores a sequence's state only whole, and a copy of
            # a 7B's 500-token f16 KV cache is about 65 MB of memcpy
            if not gen.take_over(self._seq):
                raise GenerationError("llama.cpp refused to hand the prompt's KV cache to the repacked weights",
                                      hint="try --no-repack; RT_DEBUG=1 shows llama.cpp's log")
            logger.debug("KV cache of %d tokens handed to the repacked weights in %.3f s",
                         len(head), time.perf_counter() - started)
            kept = cached
        gen.decode(tokens[-1:])
        return kept

    def yes_no(self, prompt: str, probe: str) -> YesNo:
        """The model's P(yes) after ``prompt + probe`` (already templated text; ``probe`` asks a
        yes/no question and starts the reply), read from the next-token logits
        (:mod:`runtime.llm.yes_no`). The probe's tokens then leave the KV cache the way a
        rejected prompt-lookup draft does, so ``prompt``'s stay for the answer that follows."""
        started = time.perf_counter()
        tokens = self.prompt_tokens(prompt)
        tail = self.tokenize(probe)
        if not tokens or not tail:
            raise InputError("a yes/no probe needs a prompt and a probe question")
        self.check_fits(len(tokens) + len(tail))
        cached = self._fill([*tokens, *tail])  # on the prompt context: a prompt, read once
        if self._yes_no_ids is None:
            self._yes_no_ids = (spelling_tokens(self.tokenize, YES_WORDS), spelling_tokens(self.tokenize, NO_WORDS))
        logits = array("f")
        logits.frombytes(self._seq.context.logits(-1))
        p_yes, yes, no = from_logits(logits, *self._yes_no_ids)
        self._seq.drop_after(len(tokens))
        return YesNo(p_yes, yes, no, len(tokens) + len(tail), cached, time.perf_counter() - started)

    def check_fits(self, n_tokens: int) -> None:
        """Raise :class:`ContextOverflowError` unless a prompt of ``n_tokens`` leaves room to answer."""
        if n_tokens >= self.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {n_tokens} tokens but the context window holds {self.n_ctx}",
                tokens=n_tokens, n_ctx=self.n_ctx,
                hint=f"shorten it or raise --ctx (this model was trained on up to {self.n_ctx_train})",
            )

    def stream(self, prompt: str, options: GenerateOptions = GenerateOptions()) -> Generator[str, None, Completion]:
        """Generate from an already-templated prompt, yielding text pieces as they become final.

        The generator's return value (``StopIteration.value``) is the :class:`Completion`.
        Raises :class:`ContextOverflowError` here, before anything is decoded, if the prompt
        does not fit, and :class:`InputError` if it has no tokens at all.
        """
        tokens = self.prompt_tokens(prompt)
        if not tokens:  # nothing to decode means no logits to sample: llama.cpp aborts the process
            raise InputError("the prompt is empty (it has no tokens)", hint="give the model some text to continue")
        self.check_fits(len(tokens))
        return self._generate(tokens, options)

    def _use_threads(self, threads: int | None) -> None:
        """Generate with ``threads`` threads from now on (``None``: keep the current count);
        prompt processing keeps its own count."""
        if threads is not None and threads != self.n_threads:
            context = self._gen.context
            context.set_threads(threads, self.n_threads_batch)
            self.n_threads = context.threads[0]
            logger.debug("generation threads: %d", self.n_threads)

    def row_cost(self, options: GenerateOptions) -> float:
        """The prompt-lookup row cost for ``options``: their ``lookup_row_cost``, or the one
        measured for this model and machine (:mod:`runtime.llm.row_cost`), read from RT_HOME's
        cache or measured now (once) after the cached tokens, which stay."""
        if options.lookup_row_cost is not None:
            return options.lookup_row_cost
        if self._row_cost is None:  # the key (model file, load options, rows) is fixed per engine
            rows = max(1, self.n_outputs - 1)
            key = row_cost.cache_key(self.path, self.options, rows)
            path = row_cost.cache_file(key)
            value = row_cost.read(path, key)
            if value is None:
                filler = self.tokenize(row_cost.filler_text(row_cost.CONTEXT_TOKENS + 1 + rows))
                measured = row_cost.measure_after(self._gen, filler, rows)
                if measured is None:
                    logger.debug("no room in the context to measure the lookup row cost; using %.2f",
                                 row_cost.FALLBACK)
                    return row_cost.FALLBACK
                row_cost.write(path, key, measured)
                value = measured.row_cost
                logger.debug("lookup row cost measured: %.3f (decode 1: %.1f ms, 1 + %d: %.1f ms; %.2f s)",
                             value, measured.single * 1000, rows, measured.batch * 1000, measured.seconds)
            self._row_cost = value
        return self._row_cost

    def _generate(self, tokens: list[int], options: GenerateOptions) -> Generator[str, None, Completion]:
        self._use_threads(options.threads)
        # the repacked context decodes one token at a time: the repacked kernels that crash on
        # some CPUs (AMX) crash in batches, and a draft's verification is one
        lookup = (options.prompt_lookup and options.temperature <= 0 and options.lookup_draft > 0
                  and not self.hybrid)
        # measured (once) before the prompt, whose last logits the first token is sampled from
        cost = self.row_cost(options) if lookup and options.lookup_adaptive else row_cost.FALLBACK
        started = time.perf_counter()
        cached = self._prefill(tokens)
        seq = self._gen
        prompt_done = time.perf_counter()
        text = TextAssembler(options.stop)
        generated, finish = 0, "length"
        guard = LoopGuard(options.stop_repeats, options.stop_near_repeats)
        drafter = Drafter(tokens, options.lookup_draft, options.lookup_ngram, cost,
                          options.lookup_adaptive) if lookup else None
        self.last_drafts = drafter.drafts if drafter else []
        with Sampler(options, self._model.n_vocab) as sampler:
            pending = [sampler.sample(seq.context.handle)]  # tokens sampled, not yet emitted nor decoded
            while pending:
                token = pending.pop(0)
                if self._model.is_eog(token):
                    finish = "stop"
                    break
                generated += 1
                raw = self._model.piece(token)
                piece = text.feed(raw)
                if piece:
                    yield piece
                if text.stopped:
                    finish = "stop"
                    break
                loop = guard.add(token, raw)
                if loop:
                    logger.info("the model %s; its answer stops there (a larger model loops less)", loop)
                    finish = "loop"
                    break
                if len(seq) >= self.n_ctx or generated >= options.max_tokens:
                    break
                if pending:  # an accepted draft token: already in the KV cache
                    continue
                if drafter is None:
                    seq.decode([token])
                    pending = [sampler.sample(seq.context.handle)]
                    continue
                room = min(self.n_outputs - 1, options.max_tokens - generated - 1,
                           self.n_ctx - len(seq) - 1)
                guess = drafter.propose(token, room)
                pending = self._verify(token, guess, sampler)
                drafter.record(guess, len(pending) - 1)
        tail = text.finish()
        if tail:
            yield tail
        return Completion(
            text=text.text, prompt_tokens=len(tokens), completion_tokens=generated,
            cached_tokens=cached, finish_reason=finish,
            prompt_seconds=prompt_done - started,
            generation_seconds=time.perf_counter() - prompt_done,
            draft_tokens=drafter.drafted if drafter else 0,
            accepted_tokens=drafter.accepted if drafter else 0, threads=self.n_threads,
        )

    def _verify(self, token: int, guess: list[int], sampler: Sampler) -> list[int]:
        """Decode ``token`` and the draft ``guess`` in one batch; return the draft tokens the model
        agrees with (greedy), then its own next token. The rejected tail leaves the KV cache."""
        seq = self._gen
        if not guess:
            seq.decode([token])
            return [sampler.sample(seq.context.handle)]
        start = len(seq)
        seq.decode_all([token, *guess])
        out = []
        for i, expected in enumerate([*guess, None]):
            chosen = sampler.sample_at(seq.context.handle, i)
            out.append(chosen)
            if chosen != expected:
                break
        seq.drop_after(start + len(out))  # keeps token and the accepted draft tokens
        return out

    # --- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Free the contexts, then the models (idempotent)."""
        loading, self._loading = self._loading, None
        if loading is not None:
            loading.close()
        for context in self._contexts:
            context.close()
        for model in self._models:
            model.close()

    def __enter__(self) -> LlamaEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
