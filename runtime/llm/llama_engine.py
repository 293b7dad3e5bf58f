"""The llama.cpp engine: a thin in-process layer over llama.cpp's C API (llama-cpp-python's ctypes).

One model, one context, one sequence. The model is memory-mapped (llama.cpp's MMAP load mode)
and, unless ``repack`` is asked for, loaded with ``use_extra_bufts = False``: the CPU "extra
buffer types" copy the weights into anonymous memory (twice the RAM with mmap) and, in some
builds, crash in their AMX kernels on the first decode. Only load with ``repack=True`` after a
child process has shown it works (:func:`runtime.process.worker.probe_repack`).

The engine remembers which tokens its KV cache holds; a new prompt that starts with the same
tokens (the same system prompt, a growing chat) reuses them and decodes only the new tail.
Most callers want :class:`runtime.llm.model.Model`, which wraps this engine in a child process.
It satisfies the :class:`runtime.llm.engine.Engine` protocol.
"""

from __future__ import annotations

import ctypes
from array import array
import logging
import os
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from llama_cpp import llama_cpp as L

from runtime import env
from runtime.config import GenerateOptions, LoadOptions, output_rows
from runtime.errors import ContextOverflowError, GenerationError, InputError, ModelLoadError
from runtime.llm.chat_template import ChatPrompt
from runtime.llm.generation import Completion, TextAssembler
from runtime.llm.llama_native import extra_buffer_types, ggml_kv_type, init_backend
from runtime.llm import prefix_cache, row_cost
from runtime.llm.lookup import Drafter
from runtime.llm.row_cost import Measurement
from runtime.llm.sampling import Sampler
from runtime.llm.threads import sample_generation_threads
from runtime.llm.yes_no import NO_WORDS, YES_WORDS, YesNo, from_logits, spelling_tokens

logger = logging.getLogger(__name__)


# what llama_tokenize's parse_special adds (user-defined tokens are parsed either way)
_PARSED_SPECIAL = L.LLAMA_TOKEN_ATTR_CONTROL | L.LLAMA_TOKEN_ATTR_UNKNOWN


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


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
        self._model: Any = None
        self._ctx: Any = None
        self._batch: Any = None
        self._load_model()
        self._create_context()
        self._vocab = L.llama_model_get_vocab(self._model)
        self._memory = L.llama_get_memory(self._ctx)
        self._n_swa = int(L.llama_model_n_swa(self._model))
        self.n_ctx_train = int(L.llama_model_n_ctx_train(self._model))
        self.pid = os.getpid()
        self._cached: list[int] = []  # the tokens the KV cache holds, in order
        self.last_drafts: list[tuple[int, int]] = []  # prompt lookup's (drafted, accepted) per batch
        self._row_cost: float | None = None  # the measured lookup row cost, once known
        self._yes_no_ids: tuple[list[int], list[int]] | None = None  # tokens spelling yes, no

    # --- loading ----------------------------------------------------------------------------
    def _load_model(self) -> None:
        params = L.llama_model_default_params()
        params.n_gpu_layers = 0
        params.load_mode = L.LLAMA_LOAD_MODE_MMAP
        params.use_extra_bufts = bool(self.options.repack)
        if self.options.repack:
            logger.debug("repacking weights into llama.cpp's extra buffer types: %s",
                         ", ".join(extra_buffer_types()) or "none listed")
        self._model = L.llama_model_load_from_file(os.fsencode(self.path), params)
        if not self._model:
            raise ModelLoadError(
                f"llama.cpp could not load {self.path}",
                hint="run `rt info` on it; RT_DEBUG=1 shows llama.cpp's log",
            )

    def _create_context(self) -> None:
        opts = self.options
        params = L.llama_context_default_params()
        params.n_ctx = opts.n_ctx
        params.n_batch = params.n_ubatch = max(1, min(opts.n_batch, opts.n_ctx))
        params.n_seq_max = 1
        # rt reads logits for one token per batch, or for each token of a prompt-lookup draft:
        # reserving 1 + max_draft rows instead of n_batch shrinks the compute buffer by about
        # n_batch * n_vocab * 4 bytes (SmolLM2: 102 -> 16 MiB; 9 rows add 1.7 MiB)
        params.n_outputs_max = output_rows(opts.max_draft, params.n_batch)
        params.n_threads = params.n_threads_batch = opts.n_threads
        if opts.threads is None:  # generation avoids the cores other processes keep busy
            params.n_threads = sample_generation_threads(opts.n_threads)
        self.n_threads = int(params.n_threads)
        self.n_threads_batch = int(params.n_threads_batch)
        params.type_k = params.type_v = ggml_kv_type(opts.kv_type)
        if opts.kv_type != "f16":
            params.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED  # a quantized V cache needs it
        params.no_perf = True
        self._ctx = L.llama_init_from_model(self._model, params)
        if not self._ctx:
            self.close()
            raise ModelLoadError(
                f"llama.cpp could not create a {opts.n_ctx}-token context for {self.path}",
                hint="try a smaller --ctx; RT_DEBUG=1 shows llama.cpp's log",
            )
        self.n_ctx = int(L.llama_n_ctx(self._ctx))
        self.n_batch = int(params.n_batch)
        self.n_outputs = int(params.n_outputs_max)
        self._batch = L.llama_batch_init(self.n_batch, 0, 1)

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
        return [t for t in tokens if L.llama_vocab_get_attr(self._vocab, t) & _PARSED_SPECIAL]

    def _tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        data = str(text).encode("utf-8")
        size = len(data) + 8
        for _ in range(2):
            buf = (L.llama_token * size)()
            n = L.llama_tokenize(self._vocab, data, len(data), buf, size, add_special, parse_special)
            if n >= 0:
                return list(buf[:n])
            size = -n
        raise GenerationError(f"llama.cpp could not tokenize a {len(data)}-byte text")

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens`` (special tokens rendered as written)."""
        if not tokens:
            return ""
        ids = (L.llama_token * len(tokens))(*tokens)
        size = len(tokens) * 8 + 16
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = L.llama_detokenize(self._vocab, ids, len(tokens), buf, size, False, True)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", errors="replace")
            size = -n
        raise GenerationError(f"llama.cpp could not detokenize {len(tokens)} tokens")

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = L.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    def special_tokens(self) -> dict[str, str]:
        """Text of the BOS and EOS tokens (for chat templates); ``""`` when the vocab has none."""
        out = {}
        for name, token in (("bos_token", L.llama_vocab_bos(self._vocab)),
                            ("eos_token", L.llama_vocab_eos(self._vocab))):
            text = L.llama_vocab_get_text(self._vocab, token) if token >= 0 else None
            out[name] = text.decode("utf-8", errors="replace") if text else ""
        return out

    def prompt_tokens(self, prompt: str) -> list[int]:
        """Tokens of an already-templated prompt, with BOS added once if the model wants it."""
        tokens = self.tokenize(prompt, add_special=True)
        bos = L.llama_vocab_bos(self._vocab)
        if len(tokens) >= 2 and tokens[0] == tokens[1] == bos:
            tokens = tokens[1:]  # the template wrote BOS itself
        return tokens

    # --- decoding ---------------------------------------------------------------------------
    def _decode(self, tokens: Sequence[int]) -> None:
        """Decode ``tokens`` after those already cached, in n_batch chunks; logits for the last."""
        for start in range(0, len(tokens), self.n_batch):
            self._decode_batch(tokens[start:start + self.n_batch], all_logits=False)

    def _decode_all(self, tokens: Sequence[int]) -> None:
        """Decode ``tokens`` (at most :attr:`n_outputs`) in one batch, with logits for each."""
        self._decode_batch(tokens, all_logits=True)

    def _decode_batch(self, chunk: Sequence[int], *, all_logits: bool) -> None:
        """One ``llama_decode`` of ``chunk`` after the cached tokens: logits for every position,
        or for the last only."""
        batch = self._batch
        pos0 = len(self._cached)
        for i, token in enumerate(chunk):
            batch.token[i] = token
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1 if all_logits else 0
        batch.logits[len(chunk) - 1] = 1
        batch.n_tokens = len(chunk)
        rc = L.llama_decode(self._ctx, batch)
        if rc != 0:
            self._forget_cache()
            raise GenerationError(f"llama_decode failed with code {rc} at position {pos0}",
                                  hint="RT_DEBUG=1 shows llama.cpp's log")
        self._cached.extend(chunk)

    def _drop_after(self, keep: int) -> None:
        """Remove the KV cache entries from position ``keep`` on (a rejected draft)."""
        if keep < len(self._cached):
            if not L.llama_memory_seq_rm(self._memory, 0, keep, -1):
                self._forget_cache()
                raise GenerationError("llama.cpp could not remove a rejected draft from the KV cache")
            del self._cached[keep:]

    def _load_prefix(self, tokens: Sequence[int]) -> int:
        """Load the saved prefix state that ``tokens`` share (at least one token left to decode);
        how many tokens it holds, 0 when there is none to use."""
        path = prefix_cache.cache_file(self.path, self.options)
        found = prefix_cache.read(path)
        if found is None:
            return 0
        saved, state = found
        shared = min(_common_prefix(saved, tokens), len(tokens) - 1)
        if shared < prefix_cache.MIN_SHARED_TOKENS:
            return 0
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if L.llama_state_seq_set_data(self._ctx, buf, len(state), 0) != len(state):
            logger.debug("ignoring prefix cache %s: llama.cpp refused its state", path)
            self._forget_cache()
            return 0
        self._cached = list(saved)
        if shared < len(saved):
            self._drop_after(shared)
            self._save_prefix()
        return shared

    def _save_prefix(self) -> None:
        size = int(L.llama_state_seq_get_size(self._ctx, 0))
        buf = (ctypes.c_uint8 * size)()
        written = int(L.llama_state_seq_get_data(self._ctx, buf, size, 0))
        if written > 0:
            prefix_cache.write(prefix_cache.cache_file(self.path, self.options), self._cached, bytes(buf[:written]))

    def _forget_cache(self) -> None:
        L.llama_memory_clear(self._memory, True)
        self._cached = []

    def _reuse_prefix(self, tokens: Sequence[int]) -> int:
        """Keep the cached prefix shared with ``tokens`` (at least one token left to decode)."""
        keep = min(_common_prefix(self._cached, tokens), len(tokens) - 1)
        if keep < len(self._cached):
            if keep == 0 or not L.llama_memory_seq_rm(self._memory, 0, keep, -1):
                self._forget_cache()
                return 0
            self._cached = self._cached[:keep]
        if keep > 0:
            # a sliding-window cache may have dropped the positions the tail must attend to
            pos_min = int(L.llama_memory_seq_pos_min(self._memory, 0))
            if pos_min < 0 or pos_min > max(0, keep - max(1, self._n_swa)):
                self._forget_cache()
                return 0
        return keep

    def _prefill(self, tokens: Sequence[int]) -> int:
        """Bring the KV cache to ``tokens`` (reusing the cached or saved prefix they share),
        with the logits of the last one ready; how many tokens were reused."""
        cached = self._reuse_prefix(tokens)
        fresh = not self._cached and self.options.prefix_cache
        if fresh:
            cached = self._load_prefix(tokens)
        self._decode(tokens[cached:])
        if fresh and cached == 0:
            self._save_prefix()  # the whole prompt; the next run keeps the part it shares
        return cached

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
        cached = self._prefill([*tokens, *tail])
        if self._yes_no_ids is None:
            self._yes_no_ids = (spelling_tokens(self.tokenize, YES_WORDS), spelling_tokens(self.tokenize, NO_WORDS))
        logits = array("f")  # one copy of the row; slicing the ctypes pointer is 3x slower
        logits.frombytes(ctypes.string_at(L.llama_get_logits_ith(self._ctx, -1),
                                          4 * int(L.llama_vocab_n_tokens(self._vocab))))
        p_yes, yes, no = from_logits(logits, *self._yes_no_ids)
        self._drop_after(len(tokens))
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
            L.llama_set_n_threads(self._ctx, max(1, threads), self.n_threads_batch)
            self.n_threads = int(L.llama_n_threads(self._ctx))
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
                measured = self._measure_row_cost(rows)
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

    def _measure_row_cost(self, rows: int) -> Measurement | None:
        """Time decodes of 1 and ``1 + rows`` tokens on one thread after
        :data:`row_cost.CONTEXT_TOKENS` more tokens of context, then leave the KV cache and the
        thread counts as they were; ``None`` when the context is too full."""
        keep = len(self._cached)
        need = row_cost.CONTEXT_TOKENS + 1 + rows
        if keep + need >= self.n_ctx:
            return None
        filler = self.tokenize(" ".join(f"Item {i} of the list is on page {i * 7}." for i in range(need)))[:need]
        context, probe = filler[:row_cost.CONTEXT_TOKENS], filler[row_cost.CONTEXT_TOKENS:]
        L.llama_set_n_threads(self._ctx, 1, 1)  # on this thread, timed by its CPU clock
        try:
            self._decode(context)

            def decode(n: int) -> float:
                started = time.thread_time()
                self._decode_all(probe[:n])
                elapsed = time.thread_time() - started
                self._drop_after(keep + len(context))
                return elapsed

            return row_cost.measure(decode, rows)
        finally:
            L.llama_set_n_threads(self._ctx, self.n_threads, self.n_threads_batch)
            self._drop_after(keep)

    def _generate(self, tokens: list[int], options: GenerateOptions) -> Generator[str, None, Completion]:
        self._use_threads(options.threads)
        lookup = options.prompt_lookup and options.temperature <= 0 and options.lookup_draft > 0
        # measured (once) before the prompt, whose last logits the first token is sampled from
        cost = self.row_cost(options) if lookup and options.lookup_adaptive else row_cost.FALLBACK
        started = time.perf_counter()
        cached = self._prefill(tokens)
        prompt_done = time.perf_counter()
        text = TextAssembler(options.stop)
        generated, finish = 0, "length"
        drafter = Drafter(tokens, options.lookup_draft, options.lookup_ngram, cost,
                          options.lookup_adaptive) if lookup else None
        self.last_drafts = drafter.drafts if drafter else []
        with Sampler(options) as sampler:
            pending = [sampler.sample(self._ctx)]  # tokens sampled, not yet emitted nor decoded
            while pending:
                token = pending.pop(0)
                if L.llama_vocab_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                generated += 1
                piece = text.feed(self._piece(token))
                if piece:
                    yield piece
                if text.stopped:
                    finish = "stop"
                    break
                if len(self._cached) >= self.n_ctx or generated >= options.max_tokens:
                    break
                if pending:  # an accepted draft token: already in the KV cache
                    continue
                if drafter is None:
                    self._decode([token])
                    pending = [sampler.sample(self._ctx)]
                    continue
                room = min(self.n_outputs - 1, options.max_tokens - generated - 1,
                           self.n_ctx - len(self._cached) - 1)
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
        if not guess:
            self._decode([token])
            return [sampler.sample(self._ctx)]
        start = len(self._cached)
        self._decode_all([token, *guess])
        out = []
        for i, expected in enumerate([*guess, None]):
            chosen = sampler.sample_at(self._ctx, i)
            out.append(chosen)
            if chosen != expected:
                break
        self._drop_after(start + len(out))  # keeps token and the accepted draft tokens
        return out

    # --- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Free the batch, the context and the model (idempotent)."""
        if self._batch is not None:
            L.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            L.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            L.llama_model_free(self._model)
            self._model = None

    def __enter__(self) -> LlamaEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
