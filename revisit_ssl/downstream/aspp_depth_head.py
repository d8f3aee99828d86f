"""DeepLab-v3 (ASPP) head regressing depth instead of class scores."""
from typing import List

import torch
import torch.nn as nn
from mmseg.models.decode_heads import ASPPHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import SampleList

__all__ = ['ASPPDepthHead']


@MODELS.register_module()
class ASPPDepthHead(ASPPHead):
    """The ASPP head of DeepLab-v3 with one output channel: metric depth.

    It keeps :class:`mmseg.models.decode_heads.ASPPHead`'s layers (so segmentation and depth
    fine-tuning use the same model, as in arXiv 2106.05967) and replaces the class-score loss
    and post-processing: the loss compares resized depth with ``gt_depth_map`` (e.g.
    :class:`DepthMSELoss`), and predictions are clamped to ``[min_depth, max_depth]`` so that
    the log-based metrics of ``DepthMetric`` stay finite. Use it with mmseg's
    ``DepthEstimator``.

    Args:
        min_depth (float): Lower clamp of predictions (metres). Defaults to 1e-3.
        max_depth (float): Upper clamp of predictions (metres). Defaults to 10.0.
        loss_decode (dict): Depth loss. Defaults to ``dict(type='DepthMSELoss')``.
        **kwargs: Passed to :class:`ASPPHead` (``in_channels``, ``channels``,
            ``dilations``, ...); ``num_classes`` is fixed to 1.
    """

    def __init__(self,
                 min_depth: float = 1e-3,
                 max_depth: float = 10.0,
                 loss_decode: dict = dict(type='DepthMSELoss'),
                 **kwargs) -> None:
        if kwargs.pop('num_classes', 1) != 1:
            raise ValueError('ASPPDepthHead predicts one depth channel; drop '
                             'num_classes from its config')
        # threshold only matters for binary segmentation; set it to silence mmseg's warning
        kwargs.setdefault('threshold', 0.5)
        super().__init__(
            num_classes=1, out_channels=1, loss_decode=loss_decode, **kwargs)
        self.min_depth = min_depth
        self.max_depth = max_depth

    def _stack_batch_gt(self, batch_data_samples: SampleList) -> torch.Tensor:
        return torch.stack(
            [sample.gt_depth_map.data for sample in batch_data_samples])

    def loss_by_feat(self, seg_logits: torch.Tensor,
                     batch_data_samples: SampleList) -> dict:
        """Depth loss(es) between the upsampled prediction and ``gt_depth_map``."""
        gt_depth = self._stack_batch_gt(batch_data_samples)
        pred = resize(
            seg_logits,
            size=gt_depth.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
        losses_decode = self.loss_decode if isinstance(
            self.loss_decode, nn.ModuleList) else [self.loss_decode]
        loss = dict()
        for loss_decode in losses_decode:
            value = loss_decode(pred, gt_depth)
            name = loss_decode.loss_name
            loss[name] = loss[name] + value if name in loss else value
        return loss

    def predict_by_feat(self, seg_logits: torch.Tensor,
                        batch_img_metas: List[dict]) -> torch.Tensor:
        """Upsampled depth, clamped to the valid range."""
        depth = super().predict_by_feat(seg_logits, batch_img_metas)
        return depth.clamp(self.min_depth, self.max_depth)
