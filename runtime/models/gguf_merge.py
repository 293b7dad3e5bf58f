"""Merge a split GGUF (``name-00001-of-00003.gguf`` ...) into one file.

llama.cpp can load a split model from its first part, but the rest of rt (inspection, the
memory preflight, the registry's size and sha256) reasons about one file, so a split download
is merged once. The first part carries the metadata; every part carries ``split.*`` keys and
its own tensors. Tensor data is streamed from read-only memory maps, one tensor at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from runtime.diskfull import disk_full_errors
from runtime.errors import ModelFileError
from runtime.fsutil import atomic_path

logger = logging.getLogger(__name__)

_SKIPPED_PREFIXES = ("GGUF.", "split.")  # reader pseudo-keys, and the keys a merged file must not keep


def merge_split_gguf(parts: Sequence[Path], out: Path) -> Path:
    """Write the tensors of ``parts`` (in order) and the first part's metadata to ``out``.

    Raises :class:`ModelFileError` when the parts do not form one split model (wrong count,
    missing tensors). ``out`` is written atomically.
    """
    import gguf

    readers = [gguf.GGUFReader(p, "r") for p in parts]
    first = readers[0]
    expected_count = _scalar(first, "split.count")
    expected_tensors = _scalar(first, "split.tensors.count")
    tensors = [t for r in readers for t in r.tensors]
    if expected_count is not None and expected_count != len(parts):
        raise ModelFileError(
            f"{parts[0].name} says it has {expected_count} parts, {len(parts)} were given", path=parts[0]
        )
    if expected_tensors is not None and expected_tensors != len(tensors):
        raise ModelFileError(
            f"the parts of {parts[0].name} hold {len(tensors)} tensors, the first part announces {expected_tensors}",
            path=parts[0],
        )
    arch = first.fields["general.architecture"].contents()
    expected = sum(int(t.n_bytes) for t in tensors)
    with atomic_path(out) as tmp, disk_full_errors(tmp, f"merging {parts[0].name}", expected=expected):
        writer = gguf.GGUFWriter(tmp, arch)
        # Closed on failure too: an open handle would keep the temporary file alive (Windows
        # cannot delete an open file) and leak a descriptor per failed merge.
        try:
            for name, field in first.fields.items():
                if name.startswith(_SKIPPED_PREFIXES) or name == "general.architecture" or not field.types:
                    continue
                if name == "general.alignment":
                    writer.add_custom_alignment(int(field.contents()))
                    continue
                sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
                writer.add_key_value(name, field.contents(), field.types[0], sub_type=sub_type)
            for t in tensors:
                writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, int(t.n_bytes), raw_dtype=t.tensor_type)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for t in tensors:
                writer.write_tensor_data(t.data)
        finally:
            writer.close()
    logger.info("merged %d parts into %s (%d tensors)", len(parts), out, len(tensors))
    return out


def _scalar(reader: object, key: str) -> int | None:
    field = reader.fields.get(key)  # type: ignore[attr-defined]
    return int(field.contents()) if field is not None else None
