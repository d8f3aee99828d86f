"""Make our checkpoints load under torch's safe (``weights_only``) unpickler.

torch >= 2.6 loads checkpoints with ``weights_only=True``; mmengine 0.10.7 calls plain
``torch.load`` for ``--resume`` and ``load_from``, which then fails on what mmengine stores in
``meta``: the message hub's :class:`~mmengine.logging.HistoryBuffer` objects and numpy values.
We do not switch the safety off. Instead:

1. the data-only types found in our checkpoints are allow-listed (numpy arrays, dtypes and
   scalars, ``HistoryBuffer``);
2. ``HistoryBuffer`` no longer pickles its class-wide table of statistic *functions*
   (``min``/``max``/``mean``/``current``). mmengine writes each as
   ``builtins.getattr(HistoryBuffer, 'min')``, and allow-listing ``getattr`` would let a
   malicious file reach any attribute of any allowed object, i.e. undo the safety. The
   functions are class attributes that every ``HistoryBuffer`` registers anyway, so a
   loaded buffer behaves the same.

The list was taken from the GLOBAL opcodes of checkpoints written by our configs
(``pickletools.dis``); the test suite resumes with safe loading on, so a new type shows up as a
failing test. Checkpoints written by plain mmengine before ``revisit_ssl`` was imported still
hold ``getattr`` and need ``torch.load(..., weights_only=False)`` once, from a trusted source.
"""
from typing import List

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

__all__ = ['checkpoint_safe_globals', 'register_checkpoint_safe_globals']

# numpy 2 moved numpy.core to numpy._core; checkpoints name whichever wrote them.
_np_core = getattr(np, '_core', None) or np.core


def checkpoint_safe_globals() -> List[object]:
    """The plain-data classes our checkpoints reference, as ``add_safe_globals`` takes them."""
    safe = [
        HistoryBuffer,  # meta.message_hub.log_scalars
        np.ndarray,
        np.dtype,
    ]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        safe.append((_np_core.multiarray._reconstruct, f'{module}._reconstruct'))
        safe.append((_np_core.multiarray.scalar, f'{module}.scalar'))
    # numpy >= 1.25 pickles dtypes by their concrete class (np.dtypes.Float64DType, ...)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType') and isinstance(getattr(dtypes, name), type)
        ]
    return safe


def _history_buffer_getstate(self: HistoryBuffer) -> dict:
    # Data only: see the module docstring for why the statistic functions stay out.
    return {
        k: v
        for k, v in self.__dict__.items() if k != 'statistics_methods'
    }


_mmengine_setstate = HistoryBuffer.__setstate__


def _history_buffer_setstate(self: HistoryBuffer, state: dict) -> None:
    _mmengine_setstate(self, state)
    self._set_default_statistics()


def register_checkpoint_safe_globals() -> None:
    """Allow-list our checkpoint types and make ``HistoryBuffer`` pickle data only."""
    torch.serialization.add_safe_globals(checkpoint_safe_globals())
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    HistoryBuffer.__setstate__ = _history_buffer_setstate
