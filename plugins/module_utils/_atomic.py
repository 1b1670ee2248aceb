# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace a file atomically: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile


def replace_file(path: str, data: bytes, mode: int, prefix: str = ".peerlab-") -> None:
    """Write `data` to a temporary file in the same directory (flushed to disk, given `mode`), then
    rename it over `path`; the temporary file is removed if anything fails."""
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=prefix)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
