"""The demo data: procedural scenes written in the dataset layouts the configs expect.

These machines have no real datasets, so the project draws its own (a tiny COCO of shapes on
textured backgrounds, :mod:`revisit_ssl.utils.demo_scenes`) and writes every scene in each
requested layout (:mod:`revisit_ssl.utils.demo_writers`). ``tools/make_demo_data.py`` is the
command line of :func:`make_demo_data`.

Everything is deterministic for a seed: image ``i`` of a split is drawn from
``numpy.random.default_rng([seed, split_id, i])``, so a subset can be regenerated alone.

The modules depend one way: ``demo_scenes`` <- ``demo_writers`` <- ``demo_data``. The scene
names are re-exported here for the callers that import them with :func:`make_demo_data`.
"""
from typing import Sequence

import numpy as np

from .demo_scenes import (CLASS_HUES, DEMO_CLASSES, Scene, SceneObject,
                          draw_scene, semantic_map)
from .demo_writers import DEMO_WRITERS

__all__ = [
    'DEMO_CLASSES', 'CLASS_HUES', 'SceneObject', 'Scene', 'draw_scene',
    'semantic_map', 'make_demo_data'
]


def make_demo_data(out_dir: str,
                   formats: Sequence[str] = ('cls', ),
                   num_train: int = 480,
                   num_val: int = 120,
                   seed: int = 0,
                   min_size: int = 96,
                   max_size: int = 160) -> dict:
    """Draw the demo scenes and write them in the requested layouts.

    Dominant classes are balanced (image ``i`` gets class ``i % num_classes``) so the labelled
    split suits kNN and linear probes; sizes and aspect ratios vary per image.

    Args:
        out_dir (str): Root folder, e.g. ``data/demo``.
        formats (Sequence[str]): Names from ``DEMO_WRITERS``.
        num_train (int): Images in the train split.
        num_val (int): Images in the val split.
        seed (int): Seed; the same seed gives byte-identical files.
        min_size (int): Smallest image side length.
        max_size (int): Largest image side length.

    Returns:
        dict: Number of images written per split.
    """
    unknown = set(formats) - set(DEMO_WRITERS)
    if unknown:
        raise ValueError(f'unknown demo formats {sorted(unknown)}; '
                         f'choose from {sorted(DEMO_WRITERS)}')
    writers = [DEMO_WRITERS[name](out_dir) for name in formats]
    counts = {}
    for split_id, (split, num) in enumerate((('train', num_train),
                                             ('val', num_val))):
        for i in range(num):
            rng = np.random.default_rng([seed, split_id, i])
            w, h = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
            scene = draw_scene(rng, (w, h), label=i % len(DEMO_CLASSES))
            for writer in writers:
                writer.add(split, i, scene)
        counts[split] = num
    for writer in writers:
        writer.finish()
    return counts
