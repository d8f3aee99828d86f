"""PASCAL VOC's colour map, the palette of VOC and DAVIS label PNGs (and our NYUD-v2 classes)."""
from typing import List

__all__ = ['voc_colour_map', 'voc_palette']


def voc_colour_map(num: int = 256) -> List[List[int]]:
    """The bit-interleaved VOC colour map: a fixed, distinct ``[r, g, b]`` for ids ``0..num-1``.

    Id 0 is black, 1 dark red, 2 dark green, 3 olive, ... (VOC devkit ``VOClabelcolormap.m``,
    DAVIS-2017 annotations use the same map).

    Args:
        num (int): How many ids. Defaults to 256.

    Returns:
        list[list[int]]: ``num`` RGB triples.
    """
    colours = []
    for i in range(num):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append([r, g, b])
    return colours


def voc_palette() -> List[int]:
    """The 256-entry map flattened ``[r0, g0, b0, r1, ...]``, as ``PIL.Image.putpalette`` takes it."""
    return [v for colour in voc_colour_map(256) for v in colour]
