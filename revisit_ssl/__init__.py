"""revisit-ssl: kNN-MoCo for MMPretrain, MMSegmentation and MMDetection.

Importing this package registers its components into mmpretrain's registries (``MODELS``,
``TRANSFORMS``, ``DATASETS``, ``HOOKS``) and allow-lists the types our checkpoints hold for
torch's ``weights_only`` loading. Components for downstream (mmseg / mmdet) configs live in
:mod:`revisit_ssl.downstream`, imported by those configs, so that pretraining does not pay for
importing mmseg and mmdet.
"""
from . import datasets, engine, evaluation, models  # noqa: F401
from .utils import register_checkpoint_safe_globals
from .version import __version__

register_checkpoint_safe_globals()

__all__ = ['__version__']
