"""Model files from disk, bounded: a regular file of at most ``max_bytes``, checked before reading.

``rc.load``, ``export_c``, ``from_onnx``, ``from_keras``, ``rnncore convert`` (and its
``.pt``/``.pth`` and calibration ``.npy`` inputs) open files only through :func:`check_file` /
:func:`read_file`: a FIFO, a character or block device (``/dev/zero``, a terminal) or a socket
is refused before anything is read, and so is a file larger than the limit. A file that grows
while it is read is cut at ``max_bytes + 1`` bytes and refused, so memory stays bounded even then.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["MAX_MODEL_BYTES", "check_file", "read_file"]

#: Default limit of a model file read from disk (2 GiB): far above any model the C core runs on a
#: device, below the 4 GiB the ``.rnc`` format's 32-bit sizes allow and at protobuf's 2 GiB limit
#: for ONNX. Raise it per call with ``max_bytes=``.
MAX_MODEL_BYTES = 2 * 1024**3

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _limit(max_bytes: int) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes: expected a positive int, got {max_bytes!r}")
    return max_bytes


def check_file(path: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES, what: str = "model file") -> int:
    """Size in bytes of the regular file ``path`` (symbolic links followed), or an error.

    Raises
    ------
    FileNotFoundError, PermissionError, ...
        as ``os.stat`` does (the exception carries ``filename``).
    IsADirectoryError
        for a directory.
    ValueError
        for any other non-regular file (naming its kind) and for a file above ``max_bytes``
        (naming the path, its size and the limit).
    """
    limit = _limit(max_bytes)
    p = os.fspath(path)
    st = os.stat(p)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), p)
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise ValueError(f"{p}: {what}: expected a regular file, got {kind}")
    if st.st_size > limit:
        raise ValueError(f"{p}: {what} of {st.st_size} bytes is larger than the limit max_bytes={limit} "
                         f"(pass a larger max_bytes to read it)")
    return st.st_size


def read_file(path: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES, what: str = "model file") -> bytes:
    """The bytes of the regular file ``path``, after :func:`check_file`; at most ``max_bytes + 1``
    bytes are ever read (a file that grew past the limit meanwhile is refused).

    Raises
    ------
    OSError, ValueError
        as :func:`check_file`.
    """
    limit = _limit(max_bytes)
    check_file(path, limit, what)
    with open(os.fspath(path), "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{os.fspath(path)}: {what} grew past the limit max_bytes={limit} while it was read")
    return data
