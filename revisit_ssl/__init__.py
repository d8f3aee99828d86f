"""revisit-ssl: kNN-MoCo for MMPretrain, MMSegmentation and MMDetection.

Importing this package registers its components into mmpretrain's registries (``MODELS``,
``TRANSFORMS``, ``DATASETS``, ``HOOKS``) and allow-lists the types our checkpoints hold for
torch's ``weights_only`` loading. Components for downstream (mmseg / mmdet) configs live in
:mod:`revisit_ssl.downstream`, imported by those configs, so that pretraining does not pay for
importing mmseg and mmdet.
"""
# first: quiets third-party warnings raised while configs load and in dataloader workers
from .utils.quiet_warnings import silence_known_warnings

silence_known_warnings()

from . import datasets, engine, evaluation, models  # noqa: E402,F401
from .utils import register_checkpoint_safe_globals  # noqa: E402
from .version import __version__  # noqa: E402

register_checkpoint_safe_globals()

__all__ = ['__version__']
