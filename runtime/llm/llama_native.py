"""The native side, set up once per process: llama.cpp's backend, its log, and what it offers.

Only the engine imports this module (``import llama_cpp`` costs a few hundred milliseconds and
loads the shared libraries), so ``rt --help`` and ``rt info`` never pay for it.

llama.cpp logs every load step on stderr. rt routes that log to the ``runtime.llama`` logger at
DEBUG level, and echoes it on stderr only when asked (``verbose`` or ``RT_DEBUG=1``). The ctypes
callback object must stay referenced for as long as llama.cpp may call it: it lives in a module
global.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

from llama_cpp import llama_cpp as L

from runtime.config import kv_cache_type
from runtime.ggml_library import load_library

logger = logging.getLogger("runtime.llama")

_state: dict[str, Any] = {"backend": False, "echo": False, "callback": None}


def _on_log(level: int, text: bytes | None, _user_data: ctypes.c_void_p) -> None:
    message = (text or b"").decode("utf-8", errors="replace")
    if _state["echo"]:
        sys.stderr.write(message)
        sys.stderr.flush()
    elif logger.isEnabledFor(logging.DEBUG) and message.strip():
        logger.debug("%s", message.rstrip())


def init_backend(*, echo_log: bool = False) -> None:
    """Initialise llama.cpp once per process and install rt's log callback.

    ``echo_log`` shows llama.cpp's own log on stderr (``--verbose`` / ``RT_DEBUG=1``).
    """
    _state["echo"] = bool(echo_log)
    if _state["callback"] is None:
        _state["callback"] = L.llama_log_callback(_on_log)
        L.llama_log_set(_state["callback"], ctypes.c_void_p(0))
    if not _state["backend"]:
        L.llama_backend_init()
        _state["backend"] = True


def ggml_kv_type(name: str) -> int:
    """llama.cpp's ggml type number for the KV cache type ``name`` (:data:`runtime.config.KV_CACHE_TYPES`)."""
    return int(getattr(L, f"GGML_TYPE_{kv_cache_type(name).name.upper()}"))


def _ggml_library(name: str) -> ctypes.CDLL:
    return load_library(name)


def extra_buffer_types() -> list[str]:
    """Names of the CPU "extra buffer types" this llama.cpp build offers, in its order of
    preference (e.g. ``["AMX", "CPU_REPACK"]``); ``[]`` when they cannot be listed.

    With ``use_extra_bufts`` on, llama.cpp gives each weight to the first of these that
    supports it. Used for diagnostics when ``--repack`` is asked for.
    """
    try:
        ggml, base = _ggml_library("ggml"), _ggml_library("ggml-base")
        ggml.ggml_backend_dev_by_type.restype = ctypes.c_void_p
        ggml.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
        ggml.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
        ggml.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
        base.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
        base.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        base.ggml_backend_buft_name.restype = ctypes.c_char_p
        base.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
        device = ggml.ggml_backend_dev_by_type(0)  # GGML_BACKEND_DEVICE_TYPE_CPU
        registry = ggml.ggml_backend_dev_backend_reg(device)
        address = base.ggml_backend_reg_get_proc_address(registry, b"ggml_backend_dev_get_extra_bufts")
        if not device or not address:
            return []
        get_bufts = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)
        bufts = get_bufts(device)
        names: list[str] = []
        while bufts and bufts[len(names)]:
            names.append(base.ggml_backend_buft_name(bufts[len(names)]).decode())
        return names
    except (OSError, AttributeError, ValueError) as exc:
        logger.debug("cannot list extra buffer types: %s", exc)
        return []
