"""Put a file at a path without a second copy when the disk allows: a hard link, else a copy.

Installing into the registry (``rt convert``) and the hub download (:mod:`runtime.models.hub`) both
place multi-GB GGUF files this way.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from pathlib import Path

from runtime.diskfull import disk_full_errors
from runtime.fsutil import atomic_path, ensure_free_space, replace_in_use, sweep_temp_files, temp_path_for

logger = logging.getLogger(__name__)


def link_or_copy(source: Path, target: Path) -> str:
    """Hard-link ``source`` to ``target`` if they share a disk, else copy it atomically.

    Returns ``"link"`` or ``"copy"``. ``target`` is replaced if it exists; a failed copy
    leaves nothing under ``target``'s name.
    """
    source = source.resolve()  # a hard link to a symlink (the hub cache's snapshots) would dangle
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in sweep_temp_files(target.parent):  # of dead runs only, never a live one's
        logger.info("removed %s, left by an interrupted run", leftover.name)
    if target.exists() and os.path.samefile(source, target):
        return "link"
    tmp = temp_path_for(target)
    try:
        os.link(source, tmp)
    except OSError as exc:
        # EXDEV: another disk; EPERM/EACCES/ENOTSUP/EMLINK: no hard links here (FAT, some shares).
        # EINVAL: Windows on FAT/exFAT (ERROR_INVALID_FUNCTION) and shares (ERROR_NOT_SUPPORTED).
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EMLINK, errno.EINVAL):
            raise
        logger.debug("cannot hard-link %s (%s); copying", source, exc)
    else:
        # A target that Windows says is in use (a running rt serve maps it; a scanner reads it) is
        # waited for, then refused with FileInUseError: a copy would meet the same refusal.
        try:
            replace_in_use(tmp, target, keep=False)  # no fsync: the linked file may be read-only
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return "link"
    size = source.stat().st_size
    ensure_free_space(target.parent, size, f"copying {source.name}")
    with atomic_path(target) as tmp, disk_full_errors(tmp, f"copying {source.name}", expected=size):
        shutil.copyfile(source, tmp)
    return "copy"
