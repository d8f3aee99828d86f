"""``revisit_ssl`` as an mmengine config package and registry scope.

A config outside any clone inherits an installed recipe through mmengine's package syntax::

    _base_ = 'revisit_ssl::_base_/../knn_moco_coco.py'

Two things make that work, and nothing else changes:

1. :func:`register_config_package` adds ``'revisit_ssl' -> 'revisit-ssl'`` to mmengine's
   module-to-distribution table (``mmengine.config.utils.MODULE2PACKAGE``, also exported as
   ``PKG2PROJECT``), the only place mmengine looks up a ``pkg::`` prefix; without the entry
   ``Config.fromfile`` stops with "mmengine does not support to load revisit_ssl config".
   ``import revisit_ssl`` calls it, so it must happen before the config is parsed (our
   ``tools/train.py`` does). mmengine then reads ``<site-packages>/revisit_ssl/.mim/configs/``,
   which ``pip install .`` ships (``setup.py``).
2. mmengine gives every ``type`` dict of a ``revisit_ssl::`` base ``_scope_='revisit_ssl'``
   (``Config._dict_to_config_dict``) and, when building it, imports this module and searches
   the registry tree for that scope; without one it falls back to mmengine's root registries
   with a warning per build. The registries below are that scope: empty children of
   mmpretrain's (where our components register, the recipes' ``default_scope``), so each finds
   every mmpretrain and revisit_ssl component through its parent. ``locations=['revisit_ssl']``
   imports the package (registering the components) at the first look-up, as mmpretrain's
   registries import theirs.

mmpretrain's child registries are the parents, so a ``revisit_ssl::`` base resolves mmpretrain
types only: the MMSeg / MMDet configs (``configs/downstream/``) inherit ``mmseg::`` / ``mmdet::``
bases and are used from a clone, or copied.
"""
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry

__all__ = ['SCOPE', 'DISTRIBUTION', 'register_config_package', 'drop_function_scopes'
           ] + list(mmpretrain_registry.__all__)

#: Scope name (the import name) and distribution name (``pip install revisit-ssl``)
SCOPE, DISTRIBUTION = 'revisit_ssl', 'revisit-ssl'


def register_config_package() -> None:
    """Let ``Config.fromfile`` resolve ``revisit_ssl::`` bases (idempotent)."""
    MODULE2PACKAGE.setdefault(SCOPE, DISTRIBUTION)


def drop_function_scopes(cfg: dict) -> dict:
    """Remove the ``_scope_`` mark from the dataloaders' ``collate_fn`` (in place).

    mmengine marks every ``type`` dict of a package base, ``collate_fn`` included, but the
    Runner does not build ``collate_fn`` through a registry: it calls the function with every
    other key as a keyword, and ``default_collate(..., _scope_=...)`` fails. ``tools/train.py``
    and ``tools/test.py`` call this after merging the command line.

    Args:
        cfg (dict): A loaded config.

    Returns:
        dict: ``cfg``.
    """
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if isinstance(loader, dict) and isinstance(loader.get('collate_fn'), dict):
            loader['collate_fn'].pop('_scope_', None)
    return cfg


# RUNNERS, MODELS, DATASETS, TRANSFORMS, HOOKS, ...: one child of each mmpretrain registry
for _name in mmpretrain_registry.__all__:
    _parent = getattr(mmpretrain_registry, _name)
    globals()[_name] = Registry(
        _parent.name, parent=_parent, scope=SCOPE, locations=[SCOPE])
del _name, _parent
