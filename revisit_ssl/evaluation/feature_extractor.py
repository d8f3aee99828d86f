"""Frozen-backbone feature extraction: input normalisation, backbone, pooling, batching.

The offline tools and the online :class:`~revisit_ssl.engine.hooks.KNNMonitorHook` share this,
so both see the same features: the last backbone stage, global-average pooled (or the dense map
for segment retrieval), optionally L2-normalised.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.models.utils import ClsDataPreprocessor

from revisit_ssl.utils.progress import progress_bar

__all__ = [
    'IMAGENET_MEAN', 'IMAGENET_STD', 'ImageNormalizer', 'FeatureExtractor',
    'extract_features'
]

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class ImageNormalizer(ClsDataPreprocessor):
    """mmpretrain's ``ClsDataPreprocessor`` on a bare image batch: uint8 in, normalised out.

    Args:
        mean (Sequence[float]): Per-channel mean (after the channel swap).
        std (Sequence[float]): Per-channel std.
        to_rgb (bool): Swap BGR (OpenCV loading) to RGB first.
    """

    def __init__(self,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 to_rgb: bool = True) -> None:
        super().__init__(mean=[float(m) for m in mean],
                         std=[float(s) for s in std], to_rgb=to_rgb)

    @classmethod
    def from_config(cls, cfg: Config) -> 'ImageNormalizer':
        """From ``model.data_preprocessor`` or the top-level ``data_preprocessor``."""
        pre = (cfg.get('model', {}) or {}).get('data_preprocessor') or cfg.get(
            'data_preprocessor')
        if not pre or 'mean' not in pre:
            from mmengine.logging import print_log
            print_log(
                'the config has no data_preprocessor mean/std; using '
                'ImageNet statistics and BGR->RGB', logger='current')
            return cls()
        return cls(pre['mean'], pre['std'],
                   bool(pre.get('to_rgb', pre.get('bgr_to_rgb', False))))

    @classmethod
    def from_data_preprocessor(cls, module: nn.Module) -> 'ImageNormalizer':
        """Copy the statistics of a built mmengine ``ImgDataPreprocessor`` subclass.

        The model's own preprocessor may expect multi-view batches (``SelfSupDataPreprocessor``)
        or augment on the device, so its statistics are used, not its ``forward``.
        """
        to_rgb = bool(getattr(module, '_channel_conversion', False))
        if not getattr(module, '_enable_normalize', False):
            return cls([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], to_rgb)
        return cls(module.mean.flatten().tolist(),
                   module.std.flatten().tolist(), to_rgb)

    def forward(self, inputs: Union[torch.Tensor, List[torch.Tensor]]
                ) -> torch.Tensor:
        """``(N, 3, H, W)`` uint8 tensor or list of ``(3, H, W)`` tensors of one size."""
        if isinstance(inputs, (list, tuple)):
            sizes = {tuple(x.shape) for x in inputs}
            if len(sizes) > 1:  # ClsDataPreprocessor would pad them: features would shift
                raise ValueError(
                    f'images of one batch differ in size {sorted(sizes)}: '
                    'end the pipeline with a fixed-size crop, or use batch '
                    'size 1')
        return super().forward(dict(inputs=inputs))['inputs']


class FeatureExtractor(nn.Module):
    """Normaliser + backbone + pooling, always run without gradients.

    Args:
        backbone (nn.Module): A backbone returning a tuple of stage outputs (mmpretrain's
            convention); the last one is used.
        normalizer (ImageNormalizer): Input normalisation.
        pool (bool): Global-average pool ``(N, C, h, w)`` maps to ``(N, C)``; False returns the
            dense map. Defaults to True.
        l2_normalize (bool): L2-normalise pooled features (or each pixel of a dense map).
            Defaults to True.
    """

    def __init__(self,
                 backbone: nn.Module,
                 normalizer: ImageNormalizer,
                 pool: bool = True,
                 l2_normalize: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.normalizer = normalizer
        self.pool = pool
        self.l2_normalize = l2_normalize

    @torch.no_grad()
    def forward(self, inputs: Union[torch.Tensor, List[torch.Tensor]]
                ) -> torch.Tensor:
        outs = self.backbone(self.normalizer(inputs))
        feats = outs[-1] if isinstance(outs, (tuple, list)) else outs
        if isinstance(feats, (tuple, list)):  # e.g. ViT's (patch tokens, cls token)
            feats = feats[-1]
        if feats.ndim == 4 and self.pool:
            feats = F.adaptive_avg_pool2d(feats, 1).flatten(1)
        if self.l2_normalize:
            feats = F.normalize(feats.float(), dim=1)
        return feats.float()


def _labels_of(data_samples: Sequence) -> Optional[List[int]]:
    labels = []
    for sample in data_samples:
        gt = getattr(sample, 'gt_label', None)
        if gt is None:
            return None
        if torch.is_tensor(gt):
            if gt.numel() != 1:
                raise ValueError('extract_features reads single labels; got '
                                 f'gt_label of shape {tuple(gt.shape)}')
            gt = int(gt.item())
        labels.append(int(gt))
    return labels


def extract_features(extractor: nn.Module,
                     dataloader: Sequence[dict],
                     progress: bool = True,
                     desc: str = 'extracting',
                     with_labels: bool = True) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Run ``extractor`` over every batch and stack the results on the CPU.

    Args:
        extractor (nn.Module): Maps a packed image batch to features, e.g.
            :class:`FeatureExtractor`.
        dataloader (Iterable[dict]): Batches with ``inputs`` and, for labels,
            ``data_samples`` carrying ``gt_label`` (mmpretrain ``PackInputs`` output).
        progress (bool): Draw a progress bar (rich) on stderr. Defaults to True.
        desc (str): Progress bar label.
        with_labels (bool): Collect single ``gt_label`` values; False for multi-label
            samples (VOC), whose targets come from the dataset. Defaults to True.

    Returns:
        tuple[torch.Tensor, torch.Tensor | None]: Features ``(N, ...)`` and labels ``(N,)``
        (None when the samples carry no ``gt_label``).
    """
    feats, labels = [], []
    for batch in progress_bar(dataloader, desc, len(dataloader), progress):
        feats.append(extractor(batch['inputs']).cpu())
        batch_labels = _labels_of(batch.get('data_samples') or []) if (
            with_labels) else None
        if batch_labels is None:
            with_labels = False
        else:
            labels.extend(batch_labels)
    if not feats:
        raise ValueError('the dataloader yielded no batch')
    feats = torch.cat(feats)
    label_tensor = torch.tensor(labels) if with_labels and len(
        labels) == len(feats) else None
    return feats, label_tensor
