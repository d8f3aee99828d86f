"""A local file backend whose writes are atomic, for crash-safe checkpoints.

mmengine's :class:`~mmengine.fileio.LocalBackend` writes a checkpoint with ``open(path, 'wb')``:
a process killed during the write (a pre-empted job, ``kill -9``, a full disk) leaves a truncated
``epoch_N.pth`` under its final name, and the next resume or fine-tuning run fails on it, or
worse, it replaces the last good checkpoint of that name. :class:`AtomicLocalBackend` writes to a
temporary file in the same folder, flushes it to disk and renames it over the target
(``os.replace`` is atomic on POSIX), so a checkpoint path only ever holds a complete file.

Use it through the checkpoint hook's ``backend_args`` (``configs/_base_/default_runtime.py``
does)::

    default_hooks = dict(
        checkpoint=dict(type='CheckpointHook', backend_args=dict(backend='atomic_local')))
"""
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import IO, Union

from mmengine.fileio import LocalBackend, register_backend

__all__ = ['AtomicLocalBackend', 'atomic_write', 'TMP_SUFFIX']

#: Suffix of the temporary files; a crash can leave one behind (``TrainingGuardHook`` lists
#: and removes them before a resume).
TMP_SUFFIX = '.tmp'


def _write(f: IO[bytes], data: bytes) -> None:
    f.write(data)


def atomic_write(filepath: Union[str, Path], data: bytes, write=_write) -> None:
    """Write ``data`` to ``filepath`` so that the path holds the old file or the new one.

    Args:
        filepath (str | Path): Target path; its folder is created if missing.
        data (bytes): The whole content.
        write (Callable[[IO[bytes], bytes], None]): Writes ``data`` into the open temporary
            file (a seam for tests that simulate a crash mid-write). Defaults to ``f.write``.
    """
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f'.{osp.basename(filepath)}.', suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        with open(tmp, 'wb') as f:
            write(f, data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the permissions open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    # make the rename itself durable
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """:class:`~mmengine.fileio.LocalBackend` with atomic ``put`` and ``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes to ``filepath`` atomically (temporary file + rename)."""
        atomic_write(filepath, obj, self._write)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically (temporary file + rename)."""
        atomic_write(filepath, obj.encode(encoding), self._write)

    @staticmethod
    def _write(f: IO[bytes], data: bytes) -> None:
        _write(f, data)
