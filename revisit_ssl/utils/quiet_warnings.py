"""Silence the third-party warnings every tool and dataloader worker would print.

Each filter names the exact message, category and module that raises it, so the same text from
anywhere else, and every other warning, still shows:

- ``pkg_resources is deprecated as an API``: mmengine's ``is_installed`` (called by
  ``Config.fromfile`` for each ``pkg::`` base config) imports ``pkg_resources`` and then
  reloads it with ``importlib.reload``, so setuptools warns from
  ``mmengine.utils.package_utils`` once and from ``importlib`` on each reload. The pinned
  ``setuptools<81`` keeps ``pkg_resources`` working; there is nothing for a user to do.
- ``Only use 'alpha' for pillow backend.``: ``mmcv.adjust_color(..., backend='pillow')``
  (``mmcv.image.photometric``) warns on every call, that is the saturation step of
  ``HueSafeColorJitter``. It says the ``beta`` / ``gamma`` arguments are ignored, and we pass
  neither.

``import revisit_ssl`` installs the filters before anything else, so every tool that imports the
package is covered, and so are dataloader workers: forked ones inherit the filters, spawned ones
import the package to unpickle the dataset.
"""
import re
import warnings

__all__ = ['QUIET_WARNINGS', 'silence_known_warnings']

#: (message start, category, modules that raise it) of each silenced warning
QUIET_WARNINGS = (
    ('pkg_resources is deprecated as an API', UserWarning,
     ('mmengine.utils.package_utils', 'importlib')),
    ("Only use 'alpha' for pillow backend.", UserWarning, ('mmcv.image.photometric', )),
)


def silence_known_warnings() -> None:
    """Add an ``ignore`` filter for each entry of :data:`QUIET_WARNINGS` (idempotent)."""
    for message, category, modules in QUIET_WARNINGS:
        warnings.filterwarnings(
            'ignore',
            message=re.escape(message),
            category=category,
            module='(' + '|'.join(map(re.escape, modules)) + r')\Z')
