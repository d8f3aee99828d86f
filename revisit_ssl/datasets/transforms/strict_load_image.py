"""Image loading that names the file whenever it cannot be read, and optionally skips (and
counts) unreadable files instead of stopping the run."""
import ctypes
import hashlib
import logging
import multiprocessing
import os.path as osp
from typing import Optional, Tuple

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS

__all__ = [
    'UnreadableImageError', 'TooManyUnreadableImagesError', 'SkippedImageRecord',
    'StrictLoadImageFromFile'
]


class UnreadableImageError(OSError):
    """An image file exists but cannot be decoded (corrupt, truncated, empty, not an image)."""


class TooManyUnreadableImagesError(UnreadableImageError):
    """``skip_unreadable`` met more distinct unreadable files than ``max_skipped`` allows."""


class SkippedImageRecord:
    """Which files a loader skipped, shared by the process that built it and every
    dataloader worker started after that.

    Dataloader workers are separate processes, so a plain Python counter would count per
    worker and vanish with it. The record lives in shared memory (``multiprocessing``
    ``RawArray`` / ``RawValue`` under one ``Lock``, all from the default start-method
    context, which mmengine's ``env_cfg.mp_cfg`` sets before the dataset is built): forked
    workers inherit it, spawned workers receive it when they start, and the main process
    (:class:`~revisit_ssl.engine.hooks.SkippedImageReportHook`) reads the totals at any time.
    It holds the 64-bit hashes of at most ``capacity`` distinct paths (``max_skipped + 1``:
    one more and the run stops), so a broken file met again in a later epoch (or drawn again by
    the dataset's refetch) is not counted twice against the limit.

    Args:
        capacity (int): Distinct files it can hold.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._lock = multiprocessing.Lock()
        self._hashes = multiprocessing.RawArray(ctypes.c_int64, max(capacity, 1))
        self._num_distinct = multiprocessing.RawValue(ctypes.c_int64, 0)
        self._num_events = multiprocessing.RawValue(ctypes.c_int64, 0)

    def __deepcopy__(self, memo: dict) -> 'SkippedImageRecord':
        return self  # copies of a pipeline belong to the same run: keep one record

    @staticmethod
    def _hash(path: str) -> int:
        # hash() of a str differs between spawned processes; this does not
        digest = hashlib.blake2b(str(path).encode(), digest_size=8).digest()
        return int.from_bytes(digest, 'little', signed=True)

    def add(self, path: str) -> Tuple[bool, int]:
        """Record one skip of ``path``.

        Returns:
            tuple[bool, int]: Whether ``path`` was not recorded before, and the number of
            distinct paths recorded (capped at ``capacity``).
        """
        key = self._hash(path)
        with self._lock:
            self._num_events.value += 1
            n = self._num_distinct.value
            if key in self._hashes[:n]:
                return False, n
            if n < self.capacity:
                self._hashes[n] = key
                self._num_distinct.value = n + 1
            return True, min(n + 1, self.capacity)

    @property
    def num_distinct(self) -> int:
        """Distinct files skipped so far (all processes)."""
        return int(self._num_distinct.value)

    @property
    def num_events(self) -> int:
        """Skips so far (all processes), a file skipped twice counting twice."""
        return int(self._num_events.value)


@TRANSFORMS.register_module()
class StrictLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` whose errors always name the file and say what to do.

    mmcv 2.1.0's loader names the file for a missing file and for undecodable bytes, but the
    latter only through an ``assert`` (gone under ``python -O``, after which a ``None`` image
    fails much later), and an empty (0-byte) file, the usual trace of an interrupted download,
    raises OpenCV's ``!buf.empty()`` without any file name. Drop-in replacement: same
    arguments; ``ignore_empty=True`` still returns None instead of raising.

    With ``skip_unreadable=True`` a missing or undecodable file does not stop training: the
    transform logs a warning with the path and the reason (once per file), returns None, and
    mmengine's ``BaseDataset.__getitem__`` then loads a random other sample (it retries up to
    the dataset's ``max_refetch``, 1000 by default; a test-mode dataset raises on None
    instead). Skips are counted in a :class:`SkippedImageRecord` shared with the dataloader
    workers; once more than ``max_skipped`` distinct files were skipped, the next one raises
    :class:`TooManyUnreadableImagesError`. Add ``SkippedImageReportHook`` to ``custom_hooks`` to
    get the totals in the log after every epoch and at the end of training.

    **Required Keys:** ``img_path``. **Added Keys:** ``img``, ``img_shape``, ``ori_shape``.

    Args:
        skip_unreadable (bool): Skip (log and count) unreadable files instead of raising.
            Defaults to False.
        max_skipped (int): With ``skip_unreadable``, the most distinct files that may be
            skipped; one more stops the run. Counted per training process (each distributed
            rank builds its own dataset). Defaults to 100.
        **kwargs: ``LoadImageFromFile``'s arguments (``color_type``, ``imdecode_backend``,
            ``backend_args``, ``ignore_empty``, ...).

    Raises:
        FileNotFoundError: The file does not exist (message names it).
        UnreadableImageError: The file exists but is not a decodable image (message names it,
            gives its size in bytes and the decoder's error).
        TooManyUnreadableImagesError: ``skip_unreadable`` and more than ``max_skipped``
            distinct files skipped.
    """

    def __init__(self,
                 *args,
                 skip_unreadable: bool = False,
                 max_skipped: int = 100,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(max_skipped, bool) or not isinstance(max_skipped, int) or max_skipped < 0:
            raise ValueError(f'max_skipped must be an integer >= 0, got {max_skipped!r}')
        if skip_unreadable and self.ignore_empty:
            raise ValueError(
                'StrictLoadImageFromFile: skip_unreadable=True and ignore_empty=True; '
                'ignore_empty drops unreadable files without a trace: set '
                'ignore_empty=False (skip_unreadable logs and counts each one)')
        self.skip_unreadable = bool(skip_unreadable)
        self.max_skipped = max_skipped
        self.skipped: Optional[SkippedImageRecord] = (
            SkippedImageRecord(max_skipped + 1) if self.skip_unreadable else None)

    def transform(self, results: dict) -> Optional[dict]:
        """Load the image at ``results['img_path']``.

        Args:
            results (dict): Result dict with ``img_path``.

        Returns:
            dict | None: ``results`` with the image, or None for an unreadable file when
            ``ignore_empty=True`` or ``skip_unreadable=True``.
        """
        filename = results['img_path']
        try:
            loaded = super().transform(results)
        except FileNotFoundError as error:
            if self.skip_unreadable:
                return self._skip(filename, 'file not found')
            raise FileNotFoundError(
                f'Image file not found: {filename}. Check the dataset root / data_prefix '
                'in the config, or remove the entry from the annotation file.') from error
        except Exception as error:  # noqa: BLE001  decoders raise many unrelated types
            if self.skip_unreadable:
                return self._skip(filename, self.failure_reason(filename, error))
            raise self._unreadable(filename, error) from error
        if loaded is None and not self.ignore_empty:
            if self.skip_unreadable:
                return self._skip(filename, self.failure_reason(filename, None))
            raise self._unreadable(filename, None)
        return loaded

    def _skip(self, filename: str, reason: str) -> None:
        """Count and log one unreadable file; stop once more than ``max_skipped``."""
        new, distinct = self.skipped.add(filename)
        if distinct > self.max_skipped:
            raise TooManyUnreadableImagesError(
                f'More than max_skipped={self.max_skipped} distinct unreadable image files '
                f'were skipped; stopping at {filename} ({reason}). Fix or remove the broken '
                'files (python tools/check_dataset.py CONFIG lists them all), or raise '
                'max_skipped of StrictLoadImageFromFile in the train pipeline.')
        if new:
            print_log(
                f'Skipped unreadable image {filename}: {reason} ({distinct} distinct '
                f'file(s) skipped so far, max_skipped={self.max_skipped}); loading another '
                'sample instead.',
                logger='current',
                level=logging.WARNING)
        return None

    @staticmethod
    def _size(filename: str) -> str:
        return (f'{osp.getsize(filename)} bytes'
                if isinstance(filename, str) and osp.isfile(filename) else 'size unknown')

    @classmethod
    def failure_reason(cls, filename: str, error: Optional[BaseException]) -> str:
        """Short text of why ``filename`` could not be decoded (size and decoder error).

        Args:
            filename (str): The image file.
            error (BaseException, optional): What the decoder raised; None when it returned
                no image.
        """
        if error is None or (isinstance(error, AssertionError)
                             and 'failed to load image' in str(error)):
            detail = ': the decoder returned no image'  # mmcv asserts img is not None
        else:
            detail = f': {type(error).__name__}: {str(error).strip()}'
        return f'cannot decode ({cls._size(filename)}){detail}'

    @classmethod
    def _unreadable(cls, filename: str,
                    error: Optional[BaseException]) -> UnreadableImageError:
        reason = f': {type(error).__name__}: {str(error).strip()}' if error is not None else ''
        return UnreadableImageError(
            f'Cannot decode image file {filename} ({cls._size(filename)}){reason}. The file '
            'is corrupt, truncated or not an image: re-download or re-extract it, remove it '
            'from the dataset, or let training skip such files with '
            "dict(type='StrictLoadImageFromFile', skip_unreadable=True, max_skipped=N) "
            '(docs/transforms.md).')

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.skip_unreadable:
            text = text[:-1] + f', skip_unreadable=True, max_skipped={self.max_skipped})'
        return text
