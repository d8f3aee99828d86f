"""Data preprocessor that augments kNN-MoCo's views on the model's device, batched."""
from typing import List, Optional, Sequence

import torch
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS

from revisit_ssl.datasets.transforms.random_choice_auto_augment import RandomChoiceAutoAugment
from .batched_view_ops import apply_batched_ops, build_batched_view_ops

__all__ = ['DeviceViewAugmentPreprocessor']


@MODELS.register_module()
class DeviceViewAugmentPreprocessor(SelfSupDataPreprocessor):
    """:class:`SelfSupDataPreprocessor` that first applies the views' photometric augmentation.

    The accelerator path of the view pipeline: the data loader only decodes, crops and resizes
    (``ConstrainedMultiCrop`` then ``PackInputs``), and in training this preprocessor applies
    what ``MultiCropViewAugment`` applies on the CPU path, batched on the model's device with
    per-sample random parameters (:mod:`.batched_view_ops`): the key (view ``key_index``)
    always gets ``key_transforms``; every other view (the query and each small crop) takes,
    per sample and on its own, the AutoAugment branch (``auto_augment_transforms``) with
    probability ``a_plus_prob`` under A+ and ``view_transforms`` otherwise. The lists are the
    CPU path's config dicts (``FastColorJitter`` ...), so the two paths share the config's
    probabilities and ranges. Then the usual BGR -> RGB, float and normalisation. Outside
    training (kNN monitor, feature extraction) nothing is augmented.

    Randomness comes from torch's global generator on the device, which ``StepSeedHook`` seeds
    before every step from (``randomness.seed``, iteration, rank), so a ``--resume`` draws what
    the uninterrupted run drew. ``last_auto_augmented`` holds, after each training call, one bool
    tensor per view saying which samples took the AutoAugment branch.

    Paper: `Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
    <https://arxiv.org/abs/2106.05967>`_.

    Args:
        view_transforms (Sequence[dict]): The standard branch (MoCo-v2's augmentations), e.g.
            the ``view_transforms`` of ``configs/_base_/datasets/coco_knn_moco.py``.
        auto_augment_transforms (Sequence[dict], optional): The A+ branch (flip +
            ``FastAutoAugment``). Required with ``a_plus=True``.
        key_transforms (Sequence[dict], optional): The key's transforms. Defaults to
            ``view_transforms``.
        a_plus (bool): Use A+ on the positives. Defaults to True.
        a_plus_prob (float): Probability of the AutoAugment branch per positive view.
            Defaults to 0.5.
        key_index (int): Which view is the key. Defaults to 1 (order query, key, smalls).
        **kwargs: :class:`SelfSupDataPreprocessor`'s arguments (``mean``, ``std``,
            ``to_rgb`` ...). The views arrive in BGR (as mmcv loads them), so ``to_rgb=True``.
    """

    def __init__(self,
                 view_transforms: Sequence[dict],
                 auto_augment_transforms: Optional[Sequence[dict]] = None,
                 key_transforms: Optional[Sequence[dict]] = None,
                 a_plus: bool = True,
                 a_plus_prob: float = 0.5,
                 key_index: int = 1,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not kwargs.get('to_rgb', False) and not kwargs.get('bgr_to_rgb', False):
            raise ValueError('DeviceViewAugmentPreprocessor needs to_rgb=True: the views '
                             'arrive in BGR and its colour ops work in RGB.')
        self.a_plus = bool(a_plus)
        self.a_plus_prob = RandomChoiceAutoAugment.auto_augment_prob(a_plus_prob)
        if self.a_plus and not auto_augment_transforms:
            raise ValueError('a_plus=True needs auto_augment_transforms (e.g. the config\'s '
                             'auto_augment_transforms list), or set a_plus=False.')
        self.key_index = int(key_index)
        self.standard_ops = build_batched_view_ops(view_transforms)
        self.key_ops = self.standard_ops if key_transforms is None else \
            build_batched_view_ops(key_transforms)
        self.auto_augment_ops = build_batched_view_ops(auto_augment_transforms or [])
        self.last_auto_augmented: List[torch.Tensor] = []

    def augment_views(self, views: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Augment each view batch ``(N, 3, H, W)`` (BGR) as in training; float32 BGR out."""
        if not isinstance(views, (list, tuple)) or len(views) < 2:
            raise TypeError('DeviceViewAugmentPreprocessor expects a list of view batches '
                            '[query, key, small...]: put ConstrainedMultiCrop and PackInputs '
                            'in the pipeline and collate_fn=dict(type="default_collate").')
        if not -len(views) <= self.key_index < len(views):
            raise ValueError(f'key_index={self.key_index} but there are only {len(views)} '
                             'views.')
        key_index = self.key_index % len(views)
        out, branches = [], []
        for index, view in enumerate(views):
            if view.dim() != 4 or view.shape[1] != 3:
                raise ValueError(f'view {index} has shape {tuple(view.shape)}; expected '
                                 '(N, 3, H, W) colour crops.')
            # torchvision's colour ops (grey weights, hue) are defined on RGB.
            x = view[:, [2, 1, 0]].float()
            auto = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            if index == key_index:
                x = apply_batched_ops(self.key_ops, x)
            else:
                if self.a_plus:
                    auto = torch.rand(x.shape[0], device=x.device) < self.a_plus_prob
                standard = (~auto).nonzero().squeeze(1)
                chosen = auto.nonzero().squeeze(1)
                x = x.clone()
                x[standard] = apply_batched_ops(self.standard_ops, x[standard])
                x[chosen] = apply_batched_ops(self.auto_augment_ops, x[chosen])
            out.append(x[:, [2, 1, 0]])
            branches.append(auto)
        self.last_auto_augmented = branches
        return out

    def forward(self, data: dict, training: bool = False) -> dict:
        """Augment the views (training only), then BGR -> RGB, float and normalise.

        Args:
            data (dict): Collated batch with ``inputs`` (list of uint8 view batches).
            training (bool): Whether this is a training step.

        Returns:
            dict: ``inputs`` (list of normalised float views) and ``data_samples``.
        """
        data = self.cast_data(data)  # to the model's device first: augment there
        if training:
            data = dict(data, inputs=self.augment_views(data['inputs']))
        return super().forward(data, training)
