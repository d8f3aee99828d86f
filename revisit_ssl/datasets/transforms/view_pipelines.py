"""Per-view augmentation pipelines of the paper, as config lists.

`Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
<https://arxiv.org/abs/2106.05967>`_ augments every view (after cropping) with MoCo-v2's
photometric augmentations, and the positives (query and small crops) optionally with "A+":
a random choice between those and flip + AutoAugment. These functions return the transform
configs (lists of dicts), so they are used as defaults by :class:`MultiCropViewAugment` and
:class:`RandomChoiceAutoAugment`, and can be called from Python configs or edited copies.
"""
from typing import Callable, List, Sequence, Union

from mmcv.transforms import Compose
from mmengine.registry import DefaultScope
from mmpretrain.registry import TRANSFORMS

__all__ = [
    'moco_v2_view_transforms', 'auto_augment_view_transforms',
    'build_view_pipeline'
]


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


def moco_v2_view_transforms(color_backend: str = 'pillow') -> List[dict]:
    """MoCo-v2's augmentations of one (already cropped) view.

    Matches mmpretrain's ``imagenet_bs32_mocov2`` view pipeline without its crop:
    colour jitter (0.4, 0.4, 0.4, 0.1) with p=0.8, grayscale with p=0.2, Gaussian blur with
    sigma in [0.1, 2] with p=0.5 and a horizontal flip with p=0.5. The jitter is
    :class:`HueSafeColorJitter`, because mmpretrain's ``ColorJitter`` crashes under numpy 2 on
    negative hue shifts.

    Args:
        color_backend (str): Backend of the colour jitter, ``'pillow'`` (as mmpretrain's
            MoCo-v2 config and torchvision) or ``'cv2'``. Defaults to ``'pillow'``.

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
            magnitude_range=(0.1, 2.0),
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
