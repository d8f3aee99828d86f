"""Procedural scene-centric demo scenes: drawing and semantic maps.

These machines have no real datasets, so the project draws its own: every image holds several
objects (shapes with colours and textures, of varied sizes and aspect ratios) on a textured
background, like a tiny COCO. Each scene is kept as a list of :class:`SceneObject` with a binary
mask, so the same scene can be written as a classification folder (class = dominant object), a
semantic / instance segmentation map or detection boxes by the writers in
:mod:`revisit_ssl.utils.demo_writers`; :func:`revisit_ssl.utils.demo_data.make_demo_data`
draws the splits and hands every scene to them.
"""
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'DEMO_CLASSES', 'CLASS_HUES', 'SceneObject', 'Scene', 'draw_scene',
    'semantic_map'
]

#: Object classes of the demo data. Index 0 of a semantic map is background, class ``c`` of this
#: tuple is label ``c + 1`` there (as in VOC, where 0 is background).
DEMO_CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'cross',
                                 'ring', 'star')

#: Each class has a preferred hue (OpenCV hue units, 0-179) that objects jitter around, so colour
#: is a weak cue and shape the strong one.
CLASS_HUES: Tuple[int, ...] = (0, 30, 60, 90, 120, 150)

_TEXTURES = ('solid', 'stripes', 'checker', 'dots', 'noise')


@dataclass
class SceneObject:
    """One drawn object.

    Args:
        label (int): Index into :data:`DEMO_CLASSES`.
        mask (np.ndarray): Boolean ``(H, W)`` mask of the visible pixels (occlusion by objects
            drawn later is already removed).
    """
    label: int
    mask: np.ndarray

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def bbox(self) -> Tuple[int, int, int, int]:
        """Tight box ``(x1, y1, x2, y2)`` of the visible pixels, x2/y2 exclusive."""
        ys, xs = np.nonzero(self.mask)
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(
            ys.max()) + 1


@dataclass
class Scene:
    """A drawn image and its objects.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 image in BGR order (OpenCV's).
        objects (list[SceneObject]): Visible objects, in drawing order.
    """
    image: np.ndarray
    objects: List[SceneObject] = field(default_factory=list)

    @property
    def dominant_label(self) -> int:
        """Label of the object with the largest visible area."""
        return max(self.objects, key=lambda o: o.area).label


def _hsv_colour(rng: np.random.Generator, hue: int) -> np.ndarray:
    hsv = np.uint8([[[hue % 180, rng.integers(150, 256), rng.integers(120,
                                                                       256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _texture(rng: np.random.Generator, h: int, w: int,
             base: np.ndarray) -> np.ndarray:
    """A ``(h, w, 3)`` float texture around colour ``base``."""
    kind = _TEXTURES[rng.integers(len(_TEXTURES))]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 'solid':
        pattern = np.zeros((h, w), np.float32)
    elif kind == 'stripes':
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(4, 12)
        pattern = np.sign(
            np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi /
                   period))
    elif kind == 'checker':
        period = int(rng.integers(3, 9))
        pattern = (((xx // period) + (yy // period)) % 2) * 2 - 1
    elif kind == 'dots':
        period = rng.uniform(5, 10)
        pattern = (np.sin(xx * 2 * np.pi / period) *
                   np.sin(yy * 2 * np.pi / period) > 0.5) * 2.0 - 1
    else:
        pattern = rng.standard_normal((h, w)).astype(np.float32)
    strength = rng.uniform(15, 50)
    return base[None, None, :] + strength * pattern[..., None]


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A low-saturation gradient plus a faint texture, like walls, roads or grass."""
    c0 = rng.uniform(40, 215, size=3).astype(np.float32)
    c1 = rng.uniform(40, 215, size=3).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (xx * np.cos(angle) + yy * np.sin(angle))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    img += 0.5 * (_texture(rng, h, w, np.zeros(3, np.float32)))
    return img


def _shape_mask(rng: np.random.Generator, label: int, h: int, w: int,
                center: Tuple[float, float], size: float,
                aspect: float) -> np.ndarray:
    """Binary mask of one shape of class ``label``."""
    mask = np.zeros((h, w), np.uint8)
    cx, cy = center
    rx, ry = size * np.sqrt(aspect) / 2, size / np.sqrt(aspect) / 2
    rot = rng.uniform(0, 2 * np.pi)
    name = DEMO_CLASSES[label]

    def poly(points: np.ndarray) -> np.ndarray:
        # points in the unit frame -> rotate, scale by (rx, ry), translate
        x = points[:, 0] * rx
        y = points[:, 1] * ry
        xr = x * np.cos(rot) - y * np.sin(rot) + cx
        yr = x * np.sin(rot) + y * np.cos(rot) + cy
        return np.round(np.stack([xr, yr], 1)).astype(np.int32)

    if name in ('circle', 'ring'):
        axes = (max(int(rx), 1), max(int(ry), 1))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, np.degrees(rot), 0, 360,
                    1, -1)
        if name == 'ring':
            inner = (max(int(rx * 0.55), 1), max(int(ry * 0.55), 1))
            cv2.ellipse(mask, (int(cx), int(cy)), inner, np.degrees(rot), 0,
                        360, 0, -1)
    elif name == 'square':
        cv2.fillPoly(mask, [poly(np.array([[-1, -1], [1, -1], [1, 1],
                                           [-1, 1]], np.float32))], 1)
    elif name == 'triangle':
        cv2.fillPoly(mask, [poly(np.array([[0, -1], [1, 1], [-1, 1]],
                                          np.float32))], 1)
    elif name == 'cross':
        t = 0.35
        cv2.fillPoly(mask, [poly(np.array([[-1, -t], [1, -t], [1, t],
                                           [-1, t]], np.float32))], 1)
        cv2.fillPoly(mask, [poly(np.array([[-t, -1], [t, -1], [t, 1],
                                           [-t, 1]], np.float32))], 1)
    elif name == 'star':
        ang = np.arange(10) * np.pi / 5 - np.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)
        cv2.fillPoly(mask, [poly(pts.astype(np.float32))], 1)
    else:  # pragma: no cover - guarded by DEMO_CLASSES
        raise ValueError(f'unknown demo class {name!r}')
    return mask.astype(bool)


def draw_scene(rng: np.random.Generator,
               size: Tuple[int, int],
               num_objects: Sequence[int] = (2, 5),
               label: int = None) -> Scene:
    """Draw one scene.

    The first object is the large "dominant" one (the image's class for kNN / linear probes);
    the others are smaller and may overlap it, but never cover most of it.

    Args:
        rng (np.random.Generator): Source of randomness.
        size (tuple[int, int]): ``(width, height)`` of the image.
        num_objects (Sequence[int]): Inclusive range of the number of objects.
        label (int, optional): Class of the dominant object; random when None.

    Returns:
        Scene: The image (BGR uint8) and its objects.
    """
    w, h = size
    img = _background(rng, h, w)
    n = int(rng.integers(num_objects[0], num_objects[1] + 1))
    labels = [int(rng.integers(len(DEMO_CLASSES))) if label is None else
              label] + [int(rng.integers(len(DEMO_CLASSES)))
                        for _ in range(n - 1)]
    short = min(w, h)
    objects: List[SceneObject] = []
    for i, lab in enumerate(labels):
        # the dominant object is drawn first, large and central-ish; the rest small, anywhere
        if i == 0:
            obj_size = rng.uniform(0.45, 0.7) * short
            center = (rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h)
        else:
            obj_size = rng.uniform(0.12, 0.3) * short
            center = (rng.uniform(0.05, 0.95) * w, rng.uniform(0.05, 0.95) * h)
        aspect = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
        mask = _shape_mask(rng, lab, h, w, center, obj_size, aspect)
        if i > 0:
            # small objects must not hide more than a third of the dominant one
            dom = objects[0].mask
            if (dom & mask).sum() > dom.sum() / 3:
                continue
        if mask.sum() < 4:
            continue
        hue = CLASS_HUES[lab] + int(rng.integers(-12, 13))
        tex = _texture(rng, h, w, _hsv_colour(rng, hue))
        img[mask] = tex[mask]
        for other in objects:
            other.mask &= ~mask
        objects.append(SceneObject(lab, mask))
    objects = [o for o in objects if o.area > 0]
    img += rng.normal(0, 4, img.shape).astype(np.float32)  # sensor noise
    return Scene(np.clip(img, 0, 255).astype(np.uint8), objects)


def semantic_map(scene: Scene, ignore_border: bool = False) -> np.ndarray:
    """Semantic label map: 0 background, ``label + 1`` for object pixels.

    Args:
        scene (Scene): A drawn scene.
        ignore_border (bool): Mark a 1-pixel border around each object with 255 (VOC's "void"
            outline).

    Returns:
        np.ndarray: ``(H, W)`` uint8 map.
    """
    seg = np.zeros(scene.image.shape[:2], np.uint8)
    for obj in scene.objects:
        seg[obj.mask] = obj.label + 1
    if ignore_border:
        edges = np.zeros_like(seg, dtype=bool)
        for obj in scene.objects:
            m = obj.mask.astype(np.uint8)
            edges |= (cv2.dilate(m, np.ones((3, 3), np.uint8)) - m).astype(bool)
        seg[edges] = 255
    return seg
