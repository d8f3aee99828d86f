"""revisit-ssl: kNN-MoCo for MMPretrain, MMSegmentation and MMDetection.

Paper: "Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations",
Van Gansbeke et al., NeurIPS 2021, https://arxiv.org/abs/2106.05967.

What ``import revisit_ssl`` does, all of it (``tests/test_import_hygiene.py`` checks it):

1. Registers the pretraining components (``datasets``, ``engine``, ``models``) into mmpretrain's
   registries (``MODELS``, ``TRANSFORMS``, ``DATASETS``, ``DATA_SAMPLERS``, ``HOOKS``,
   ``MODEL_WRAPPERS``), as ``custom_imports=['revisit_ssl']`` in the configs expects.
2. Lets torch's safe checkpoint loading (``weights_only=True``) read our checkpoints
   (:func:`~revisit_ssl.utils.register_checkpoint_safe_globals`): it allow-lists the data-only
   types mmengine stores in a checkpoint's ``meta`` (numpy arrays / dtypes / scalars,
   mmengine's ``HistoryBuffer``) and replaces ``HistoryBuffer.__getstate__`` /
   ``__setstate__`` so a buffer pickles its data without its class-wide table of statistic
   functions. That table is pickled as ``getattr(HistoryBuffer, 'min')``; allow-listing
   ``getattr`` would undo the safety. This is the one patch of a third-party class; a loaded
   buffer behaves the same (``revisit_ssl/utils/checkpoint.py`` explains it).
3. Adds two ``ignore`` filters to :mod:`warnings`
   (:func:`~revisit_ssl.utils.quiet_warnings.silence_known_warnings`), each for one exact
   message from one third-party module: setuptools' ``pkg_resources is deprecated`` raised by
   mmengine's package lookup, and mmcv's ``Only use 'alpha' for pillow backend`` raised on
   every colour-jitter call. Every other warning still shows.
4. Adds ``'revisit_ssl'`` to mmengine's table of config packages
   (:func:`~revisit_ssl.registry.register_config_package`) so that a config anywhere can
   inherit an installed recipe with ``_base_ = 'revisit_ssl::...'``; :mod:`revisit_ssl.registry`
   defines the matching registry scope.

It does not import :mod:`revisit_ssl.evaluation` (scikit-learn and the frozen-feature
evaluation, imported by the tools and the kNN monitor hook when they run) nor
:mod:`revisit_ssl.downstream` (mmseg / mmdet components, imported by the downstream configs'
``custom_imports``), so pretraining pays for neither.
"""
# first: quiets the known third-party warnings raised while configs load and in dataloader
# workers (forked ones inherit the filters, spawned ones import the package to unpickle)
from .utils.quiet_warnings import silence_known_warnings

silence_known_warnings()

from . import datasets, engine, models  # noqa: E402,F401
from .registry import register_config_package  # noqa: E402
from .utils import register_checkpoint_safe_globals  # noqa: E402
from .version import __version__  # noqa: E402

register_checkpoint_safe_globals()
register_config_package()

__all__ = ['__version__']
