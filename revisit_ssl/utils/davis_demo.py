"""A tiny procedural video set in DAVIS-2017's layout: coloured boxes moving over grey.

Each object is an axis-aligned box of its own saturated colour moving at a constant velocity,
so its masks are known exactly and a colour feature can track it. The layout is DAVIS-2017's::

    root/JPEGImages/480p/<seq>/00000.jpg ...
    root/Annotations/480p/<seq>/00000.png ...   palette PNGs, pixel = object id (0 = background)
    root/ImageSets/2017/<split>.txt             one sequence name per line

Used by the tests of ``tools/analysis/davis_label_propagation.py`` and, four times larger
(``scale=4``: 96 x 128 frames, 12 x 16 feature cells at stride 8), by
``tools/make_demo_data.py --formats davis`` (``data/demo/DAVIS``). At the tests' 24 x 32 a
stride-8 backbone sees 3 x 4 cells, too few for two networks to propagate differently.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'BACKGROUND_COLOUR', 'OBJECT_COLOURS', 'DEFAULT_SEQUENCES',
    'render_sequence', 'make_davis_demo'
]

#: RGB of the background and of objects 1, 2, 3, ... (far apart, so JPEG keeps them apart).
BACKGROUND_COLOUR = (128, 128, 128)
OBJECT_COLOURS = ((230, 30, 30), (30, 200, 30), (30, 60, 230), (230, 220, 30))

#: name -> boxes ``(top, left, height, width, dy, dx)`` in pixels / pixels per frame, for a
#: 24 x 32 frame: each box keeps to its own horizontal band, so boxes never overlap.
DEFAULT_SEQUENCES: Dict[str, List[Tuple[int, int, int, int, int, int]]] = {
    'two-boxes': [(2, 2, 6, 8, 0, 1), (13, 20, 7, 6, 1, -1)],
    'three-boxes': [(1, 3, 5, 6, 0, 2), (9, 22, 5, 7, 0, -1),
                    (17, 10, 6, 5, 0, 1)],
}


def render_sequence(
    boxes: Sequence[Tuple[int, int, int, int, int, int]],
    num_frames: int,
    size: Tuple[int, int] = (24, 32)
) -> Tuple[np.ndarray, np.ndarray]:
    """Frames ``(T, H, W, 3)`` uint8 RGB and id masks ``(T, H, W)`` of moving boxes.

    A box is clipped at the frame border; later boxes are drawn over earlier ones.
    """
    if len(boxes) > len(OBJECT_COLOURS):
        raise ValueError(f'at most {len(OBJECT_COLOURS)} objects, got '
                         f'{len(boxes)}')
    height, width = size
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    masks = np.zeros((num_frames, height, width), np.int64)
    frames[:] = BACKGROUND_COLOUR
    for t in range(num_frames):
        for obj, (top, left, h, w, dy, dx) in enumerate(boxes, 1):
            y0, x0 = top + dy * t, left + dx * t
            ys = slice(max(0, y0), max(0, min(height, y0 + h)))
            xs = slice(max(0, x0), max(0, min(width, x0 + w)))
            masks[t, ys, xs] = obj
            frames[t, ys, xs] = OBJECT_COLOURS[obj - 1]
    return frames, masks


def make_davis_demo(root: str,
                    sequences: Optional[Dict[str, list]] = None,
                    num_frames: int = 5,
                    size: Tuple[int, int] = (24, 32),
                    split: str = 'val',
                    resolution: str = '480p',
                    scale: int = 1) -> Dict[str, np.ndarray]:
    """Write the sequences in DAVIS-2017's layout under ``root``.

    Frames are JPEGs at quality 100 without chroma subsampling (box colours stay exact up to a
    few levels); annotations are palette PNGs with the DAVIS colour map.

    Args:
        root (str): The DAVIS folder to write.
        sequences (dict, optional): name -> boxes ``(top, left, height, width, dy, dx)``.
            Defaults to :data:`DEFAULT_SEQUENCES`.
        num_frames (int): Frames per sequence. Defaults to 5.
        size (tuple[int, int]): ``(height, width)`` of the frames. Defaults to (24, 32).
        split (str): The ``ImageSets/2017/<split>.txt`` to write. Defaults to 'val'.
        resolution (str): The resolution folder. Defaults to '480p'.
        scale (int): Multiplies the frame size and every box coordinate and velocity: the
            same videos, ``scale`` times larger. Defaults to 1.

    Returns:
        dict: sequence name -> its true id masks ``(T, H, W)``.
    """
    from PIL import Image

    from revisit_ssl.evaluation.label_propagation import (default_palette,
                                                          write_index_png)
    sequences = DEFAULT_SEQUENCES if sequences is None else sequences
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f'scale must be a positive int, got {scale!r}')
    sequences = {
        name: [tuple(scale * v for v in box) for box in boxes]
        for name, boxes in sequences.items()
    }
    size = (scale * size[0], scale * size[1])
    palette = default_palette()
    out = {}
    for name, boxes in sequences.items():
        frames, masks = render_sequence(boxes, num_frames, size)
        img_dir = osp.join(root, 'JPEGImages', resolution, name)
        ann_dir = osp.join(root, 'Annotations', resolution, name)
        os.makedirs(img_dir, exist_ok=True)
        for t in range(num_frames):
            Image.fromarray(frames[t]).save(osp.join(img_dir, f'{t:05d}.jpg'),
                                            quality=100,
                                            subsampling=0)
            write_index_png(osp.join(ann_dir, f'{t:05d}.png'), masks[t],
                            palette)
        out[name] = masks
    sets_dir = osp.join(root, 'ImageSets', '2017')
    os.makedirs(sets_dir, exist_ok=True)
    with open(osp.join(sets_dir, f'{split}.txt'), 'w') as f:
        f.write(''.join(f'{name}\n' for name in sequences))
    return out
