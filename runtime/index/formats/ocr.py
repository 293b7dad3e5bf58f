"""Text for PDF pages without a text layer (scans), read with RapidOCR when the ``ocr`` extra
is installed (``pip install 'rt[ocr]'``: rapidocr-onnxruntime ships its ONNX models in the
wheel and runs offline on the CPU).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from typing import Any

logger = logging.getLogger(__name__)
OCR_HINT = "pip install 'rt[ocr]' to read them with OCR"
MIN_IMAGE_PIXELS = 32 * 32  # icons and rules carry no text worth the time


def ocr_available() -> bool:
    """Whether the OCR engine is installed (checked without importing it)."""
    return importlib.util.find_spec("rapidocr_onnxruntime") is not None


@functools.lru_cache(maxsize=1)
def _engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


def ocr_page(page: Any) -> str:
    """The text OCR finds in the images of a pypdf ``page``, top to bottom, one line per box."""
    import numpy as np

    lines: list[tuple[float, float, str]] = []
    for index, image in enumerate(page.images):
        try:
            picture = image.image
        except Exception as exc:  # an image pypdf cannot decode: the others may still hold text
            logger.info("image %d of a page could not be decoded: %s", index, exc)
            continue
        if picture is None or picture.width * picture.height < MIN_IMAGE_PIXELS:
            continue
        result, _ = _engine()(np.asarray(picture.convert("RGB")))
        for box, text, _score in result or []:
            top = min(point[1] for point in box)
            left = min(point[0] for point in box)
            lines.append((index * 1e9 + top, left, text))
    rows: list[list[tuple[float, float, str]]] = []
    for line in sorted(lines):
        if rows and abs(rows[-1][0][0] - line[0]) < 12:  # boxes on the same printed line
            rows[-1].append(line)
        else:
            rows.append([line])
    return "\n".join(" ".join(text for _, _, text in sorted(row, key=lambda r: r[1])) for row in rows)
