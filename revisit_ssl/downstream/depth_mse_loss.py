"""Mean squared error over the pixels with a valid depth measurement."""
import torch
import torch.nn as nn
from mmseg.registry import MODELS

__all__ = ['DepthMSELoss']


@MODELS.register_module()
class DepthMSELoss(nn.Module):
    """MSE between predicted and ground-truth depth, on valid pixels only.

    A pixel is valid when ``min_depth < gt < max_depth``: Kinect holes are stored as ``0`` and
    the data preprocessor pads maps with ``seg_pad_val`` (255), both far outside the range.

    Args:
        min_depth (float): Smallest valid depth (metres). Defaults to 1e-3.
        max_depth (float): Largest valid depth (metres). Defaults to 10.0 (NYUD's range).
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        loss_name (str): Key of the loss in the log; mmseg sums the keys that start with
            ``loss``. Defaults to ``'loss_mse'``.
    """

    def __init__(self,
                 min_depth: float = 1e-3,
                 max_depth: float = 10.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_mse') -> None:
        super().__init__()
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                **kwargs) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): ``(N, 1, H, W)`` predicted depth.
            target (Tensor): Ground truth of the same shape.

        Returns:
            Tensor: Scalar loss; 0 (still connected to ``pred``) when no pixel is valid.
        """
        valid = (target > self.min_depth) & (target < self.max_depth)
        if not valid.any():
            return pred.sum() * 0.
        return self.loss_weight * (pred[valid] - target[valid]).pow(2).mean()

    @property
    def loss_name(self) -> str:
        return self._loss_name
