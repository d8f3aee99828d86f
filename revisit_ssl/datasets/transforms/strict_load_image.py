"""Image loading that names the file whenever it cannot be read."""
import os.path as osp
from typing import Optional

from mmcv.transforms import LoadImageFromFile
from mmpretrain.registry import TRANSFORMS

__all__ = ['UnreadableImageError', 'StrictLoadImageFromFile']


class UnreadableImageError(OSError):
    """An image file exists but cannot be decoded (corrupt, truncated, empty, not an image)."""


@TRANSFORMS.register_module()
class StrictLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` whose errors always name the file and say what to do.

    mmcv 2.1.0's loader names the file for a missing file and for undecodable bytes, but the
    latter only through an ``assert`` (gone under ``python -O``, after which a ``None`` image
    fails much later), and an empty (0-byte) file, the usual trace of an interrupted download,
    raises OpenCV's ``!buf.empty()`` without any file name. Drop-in replacement: same
    arguments; ``ignore_empty=True`` still returns None instead of raising.

    **Required Keys:** ``img_path``. **Added Keys:** ``img``, ``img_shape``, ``ori_shape``.

    Raises:
        FileNotFoundError: The file does not exist (message names it).
        UnreadableImageError: The file exists but is not a decodable image (message names it,
            gives its size in bytes and the decoder's error).
    """

    def transform(self, results: dict) -> Optional[dict]:
        """Load the image at ``results['img_path']``.

        Args:
            results (dict): Result dict with ``img_path``.

        Returns:
            dict | None: ``results`` with the image, or None for an unreadable file when
            ``ignore_empty=True``.
        """
        filename = results['img_path']
        try:
            loaded = super().transform(results)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f'Image file not found: {filename}. Check the dataset root / data_prefix '
                'in the config, or remove the entry from the annotation file.') from error
        except Exception as error:  # noqa: BLE001  decoders raise many unrelated types
            raise self._unreadable(filename, error) from error
        if loaded is None and not self.ignore_empty:
            raise self._unreadable(filename, None)
        return loaded

    @staticmethod
    def _unreadable(filename: str, error: Optional[BaseException]) -> UnreadableImageError:
        size = (f'{osp.getsize(filename)} bytes'
                if isinstance(filename, str) and osp.isfile(filename) else 'size unknown')
        reason = f': {type(error).__name__}: {str(error).strip()}' if error is not None else ''
        return UnreadableImageError(
            f'Cannot decode image file {filename} ({size}){reason}. The file is corrupt, '
            'truncated or not an image: re-download or re-extract it, or remove it from the '
            'dataset.')
