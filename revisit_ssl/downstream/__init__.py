"""Components for the downstream (MMSegmentation / MMDetection) fine-tuning configs.

Not imported by ``revisit_ssl/__init__.py``, so pretraining does not import mmseg or mmdet.
The configs under ``configs/downstream/`` load it with::

    custom_imports = dict(imports=['revisit_ssl.downstream'], allow_failed_imports=False)

It registers the NYUD-v2 datasets and the depth head / loss into mmseg's registries and the
:class:`PretrainedInitCheckHook` into mmengine's (so mmseg and mmdet configs both find it).
"""
import revisit_ssl  # noqa: F401  allow-lists checkpoint types for weights_only loading
from .aspp_depth_head import ASPPDepthHead
from .depth_mse_loss import DepthMSELoss
from .nyud_dataset import NYUD40_CLASSES, NYUDv2Dataset
from .nyud_depth_dataset import NYUDv2DepthDataset
from .pretrained_check_hook import (PretrainedInitCheckHook,
                                    find_pretrained_inits)

__all__ = [
    'ASPPDepthHead', 'DepthMSELoss', 'NYUD40_CLASSES', 'NYUDv2Dataset',
    'NYUDv2DepthDataset', 'PretrainedInitCheckHook', 'find_pretrained_inits'
]
