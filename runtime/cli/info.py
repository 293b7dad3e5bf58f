"""``rt info [MODEL]``: what a GGUF holds and whether it fits, without loading it.

Reads only the file's header (:func:`runtime.models.gguf_file.inspect_gguf`) and estimates memory
(:func:`runtime.models.memory.estimate_memory`); never imports llama_cpp or torch, so it is instant
and safe on a file that would crash llama.cpp.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields

import click

from runtime.cli.options import expand_user
from runtime.config import KV_TYPES, LoadOptions
from runtime.fsutil import human_bytes

_DEFAULTS = LoadOptions()


def human_count(n: int) -> str:
    """``134_515_008`` -> ``'135M'``, ``7_241_732_096`` -> ``'7.2B'``."""
    if n >= 10**9:
        return f"{n / 1e9:.1f}B"
    if n >= 10**6:
        return f"{n / 1e6:.0f}M"
    if n >= 10**3:
        return f"{n / 1e3:.0f}K"
    return str(n)


def _jsonable(value: object) -> object:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, tuple):
        return list(value)
    return {"array": getattr(value, "element_type", str(value)), "length": getattr(value, "length", None)}


def _report(info, estimate, options: LoadOptions) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from runtime.llm.repack_choice import preview
    from runtime.models.memory import effective_ctx
    from runtime.models.repack import repack_tradeoff

    data: dict[str, object] = {"path": str(info.path)}
    data.update({f.name: getattr(info, f.name) for f in fields(info) if f.name not in ("metadata", "path")})
    data.update(n_vocab=info.n_vocab, has_chat_template=info.chat_template is not None,
                n_ctx=effective_ctx(info, options), kv_type=options.kv_type,
                memory=asdict(estimate), fits=estimate.fits,
                repack=repack_tradeoff(estimate.weights, info.quantization).to_dict()
                | {"auto": preview(info, options).to_dict()},
                metadata={k: _jsonable(v) for k, v in info.metadata.items() if k != "tokenizer.chat_template"})
    return data


def _render(info, estimate, options: LoadOptions) -> list[str]:  # type: ignore[no-untyped-def]
    from runtime.llm.repack_choice import preview
    from runtime.models.memory import effective_ctx, suggestions
    from runtime.models.repack import repack_tradeoff

    n_ctx = effective_ctx(info, options)
    heads = f"{info.n_head} attention heads, {info.n_head_kv} KV heads, head size {info.head_dim_k}"
    parts = [f"weights {human_bytes(estimate.weights)}", f"KV cache {human_bytes(estimate.kv_cache)}",
             f"compute {human_bytes(estimate.compute)}"]
    if estimate.repack:
        parts.append(f"repacked copy {human_bytes(estimate.repack)} and its context "
                     f"{human_bytes(estimate.second_context)}")
    decision = preview(info, options)
    rows = [
        ("file", str(info.path)),
        ("name", info.name or "(not set)"),
        ("architecture", info.architecture),
        ("parameters", f"{human_count(info.n_params)} ({info.n_params:,})"),
        ("quantization", info.quantization),
        ("file size", f"{human_bytes(info.file_size)} (GGUF v{info.version}, {info.n_tensors} tensors)"),
        ("trained context", f"{info.context_length} tokens"),
        ("layers", f"{info.n_layer} ({heads})"),
        ("embedding size", str(info.n_embd)),
        ("vocabulary", f"{info.n_vocab} tokens"),
        ("chat template", "yes" if info.chat_template else "no"),
        (f"memory at --ctx {n_ctx}", f"{human_bytes(estimate.total)} ({', '.join(parts)}; {options.kv_type} KV)"),
        ("available", f"{human_bytes(estimate.available)} ({estimate.source})"),
        ("fits", "yes" if estimate.fits
         else f"no: loading would be refused; try {', '.join(suggestions(info, options, estimate))}"),
        ("--repack", repack_tradeoff(estimate.weights, info.quantization).describe()),
        (f"repack ({decision.asked})", ("yes: " if decision.repack else "no: ") + decision.reason),
    ]
    if options.n_ctx > n_ctx:
        rows.append(("note", f"--ctx {options.n_ctx} is beyond the trained context; loading caps it to {n_ctx}"))
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]


@click.command()
@click.argument("model", required=False, callback=expand_user)
@click.option("--ctx", "n_ctx", type=click.IntRange(min=0), default=_DEFAULTS.n_ctx, show_default=True,
              help="Context size for the memory estimate (0: the model's trained context).")
@click.option("--kv-type", type=click.Choice(KV_TYPES), default=_DEFAULTS.kv_type, show_default=True,
              help="KV cache type for the memory estimate.")
@click.option("--repack/--no-repack", default=_DEFAULTS.repack,
              help="Estimate with the hybrid's repacked copy [default: auto: show what rt would choose].")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def info(model: str | None, n_ctx: int, kv_type: str, repack: bool | None, as_json: bool) -> None:
    """Describe MODEL (a registry name or GGUF path; default: the default model) without loading it."""
    from runtime.models.gguf_file import inspect_gguf
    from runtime.models.memory import estimate_memory
    from runtime.models.registry import resolve_model

    options = LoadOptions(n_ctx=n_ctx, kv_type=kv_type, repack=repack)
    gguf_info = inspect_gguf(resolve_model(model))
    estimate = estimate_memory(gguf_info, options)  # auto counts no repacked copy: it may not be chosen
    if as_json:
        click.echo(json.dumps(_report(gguf_info, estimate, options), indent=2))
    else:
        click.echo("\n".join(_render(gguf_info, estimate, options)))
