"""Credentials never reach a message or a log: ``https://user:secret@host`` shows as
``https://***@host``.

``HF_ENDPOINT`` may carry a mirror's basic-auth credentials in its URL, and the URLs built from
it end up in exception texts (httpx, huggingface_hub). Every message that quotes a URL, or an
exception text that may hold one, goes through :func:`redact_credentials`; the HTTP libraries'
own loggers (httpx logs every request's URL at INFO) get :func:`redact_http_logs`.
"""

from __future__ import annotations

import logging
import re

# scheme://userinfo@ (userinfo: up to the last @ before the path, query or fragment: a password
# may hold an unescaped @, and stopping at the first one would show the rest of it)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]+@")


def redact_credentials(text: str) -> str:
    """``text`` with the user name and password of every URL in it replaced by ``***``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


# the loggers of the HTTP stack under huggingface_hub 1.x/2.x
HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "huggingface_hub")


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_credentials(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_FILTER = _RedactingFilter()


def redact_http_logs() -> None:
    """Redact credentials in what the HTTP libraries log (idempotent)."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
