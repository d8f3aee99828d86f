"""Per-view augmentation pipelines of the paper, as config lists.

`Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
<https://arxiv.org/abs/2106.05967>`_ augments every view (after cropping) with MoCo-v2's
photometric augmentations, and the positives (query and small crops) optionally with "A+":
a random choice between those and flip + AutoAugment. These functions return the transform
configs (lists of dicts), so they are used as defaults by :class:`MultiCropViewAugment` and
:class:`RandomChoiceAutoAugment`, and can be called from Python configs or edited copies.
"""
from typing import Callable, List, Sequence, Tuple, Union

from mmcv.transforms import Compose
from mmengine.registry import DefaultScope
from mmpretrain.registry import TRANSFORMS

__all__ = [
    'moco_v2_view_transforms', 'auto_augment_view_transforms', 'fast_moco_v2_view_transforms',
    'fast_auto_augment_view_transforms', 'build_view_pipeline', 'check_blur_sigma',
    'MOCO_V2_BLUR_SIGMA'
]

#: MoCo-v2's Gaussian-blur sigma range in pixels, meant for 224-px crops.
MOCO_V2_BLUR_SIGMA = (0.1, 2.0)


def build_view_pipeline(transforms: Sequence[Union[dict, Callable]]) -> Compose:
    """Build a per-view pipeline in mmpretrain's registry scope.

    mmcv's wrappers (``RandomApply``, ``Compose``) build their children from mmengine's root
    registry unless a default scope is set, which does not hold mmpretrain's or our transforms.
    Building under the ``mmpretrain`` scope makes the pipelines work the same inside a Runner
    (``default_scope='mmpretrain'``), in an mmseg/mmdet process, and in plain scripts.

    Args:
        transforms (Sequence[dict | callable]): Transform configs or built transforms.

    Returns:
        Compose: The built pipeline.
    """
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        built = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in transforms]
        return Compose(built)


def check_blur_sigma(blur_sigma: Sequence[float]) -> Tuple[float, float]:
    """Validate a Gaussian-blur sigma range ``(min, max)`` in pixels.

    MoCo-v2 draws sigma from ``[0.1, 2.0]`` for 224-px crops, i.e. up to about 1% of the crop
    side. At a 32-px crop the same sigma would blur the whole object away in half of the
    views, so small-image configs scale the range by ``crop_size / 224`` (e.g.
    ``(0.014, 0.29)`` at 32 px).

    Args:
        blur_sigma (Sequence[float]): Two numbers with ``0 < min <= max``.

    Returns:
        tuple[float, float]: The range as floats.
    """
    try:
        low, high = (float(v) for v in blur_sigma)
    except (TypeError, ValueError):
        raise ValueError(f'blur_sigma must be two numbers (min, max), got '
                         f'{blur_sigma!r}') from None
    if not 0 < low <= high:
        raise ValueError(f'blur_sigma={tuple(blur_sigma)} needs 0 < min <= max '
                         '(MoCo-v2 uses (0.1, 2.0) at 224 px; scale it with the crop '
                         'size)')
    return low, high


def moco_v2_view_transforms(
        color_backend: str = 'pillow',
        blur_sigma: Sequence[float] = MOCO_V2_BLUR_SIGMA) -> List[dict]:
    """MoCo-v2's augmentations of one (already cropped) view.

    Matches mmpretrain's ``imagenet_bs32_mocov2`` view pipeline without its crop:
    colour jitter (0.4, 0.4, 0.4, 0.1) with p=0.8, grayscale with p=0.2, Gaussian blur with
    sigma in [0.1, 2] with p=0.5 and a horizontal flip with p=0.5. The jitter is
    :class:`HueSafeColorJitter`, because mmpretrain's ``ColorJitter`` crashes under numpy 2 on
    negative hue shifts.

    Args:
        color_backend (str): Backend of the colour jitter, ``'pillow'`` (as mmpretrain's
            MoCo-v2 config and torchvision) or ``'cv2'``. Defaults to ``'pillow'``.
        blur_sigma (Sequence[float]): ``(min, max)`` standard deviation of the Gaussian blur,
            in pixels. MoCo-v2's ``(0.1, 2.0)`` is meant for 224-px crops; for smaller crops
            scale it with the crop size (see :func:`check_blur_sigma`). Defaults to
            ``(0.1, 2.0)``.

    Returns:
        list[dict]: Transform configs.
    """
    return [
        dict(
            type='RandomApply',
            transforms=[
                dict(
                    type='HueSafeColorJitter',
                    brightness=0.4,
                    contrast=0.4,
                    saturation=0.4,
                    hue=0.1,
                    backend=color_backend)
            ],
            prob=0.8),
        # Weights in BGR order: the images are BGR until the data preprocessor.
        dict(
            type='RandomGrayscale',
            prob=0.2,
            keep_channels=True,
            channel_weights=(0.114, 0.587, 0.2989)),
        dict(
            type='GaussianBlur',
            magnitude_range=check_blur_sigma(blur_sigma),
            magnitude_std='inf',
            prob=0.5),
        dict(type='RandomFlip', prob=0.5),
    ]


def auto_augment_view_transforms() -> List[dict]:
    """The A+ branch: a horizontal flip (p=0.5) then AutoAugment's ImageNet policy.

    As in the paper's official code (``RandomHorizontalFlip`` + ``AutoAugment()``), with
    mmpretrain's ``AutoAugment(policies='imagenet')``.

    Returns:
        list[dict]: Transform configs.
    """
    return [
        dict(type='RandomFlip', prob=0.5),
        dict(type='AutoAugment', policies='imagenet'),
    ]


def fast_moco_v2_view_transforms(
        blur_sigma: Sequence[float] = MOCO_V2_BLUR_SIGMA) -> List[dict]:
    """MoCo-v2's augmentations of one view with the fast uint8 transforms (the configs' path).

    The release's torchvision pipeline, op for op: ``FastColorJitter(0.4, 0.4, 0.4, 0.1)``
    with p=0.8, ``FastRandomGrayscale`` p=0.2, ``FastGaussianBlur`` sigma in ``blur_sigma``
    with p=0.5, ``FastRandomFlip`` p=0.5. ``configs/_base_/datasets/coco_knn_moco.py`` spells
    out the same list.

    Args:
        blur_sigma (Sequence[float]): ``(min, max)`` blur sigma in pixels (see
            :func:`check_blur_sigma`). Defaults to ``(0.1, 2.0)``.

    Returns:
        list[dict]: Transform configs.
    """
    return [
        dict(
            type='RandomApply',
            transforms=[
                dict(type='FastColorJitter', brightness=0.4, contrast=0.4, saturation=0.4,
                     hue=0.1)
            ],
            prob=0.8),
        dict(type='FastRandomGrayscale', prob=0.2),
        dict(type='FastGaussianBlur', sigma=check_blur_sigma(blur_sigma), prob=0.5),
        dict(type='FastRandomFlip', prob=0.5),
    ]


def fast_auto_augment_view_transforms() -> List[dict]:
    """The A+ branch with the fast transforms: flip (p=0.5), torchvision's ImageNet AutoAugment.

    Returns:
        list[dict]: Transform configs.
    """
    return [
        dict(type='FastRandomFlip', prob=0.5),
        dict(type='FastAutoAugment', policy='imagenet'),
    ]
