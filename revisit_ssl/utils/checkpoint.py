"""Allow-list the types our checkpoints hold for torch's safe (``weights_only``) loading.

torch >= 2.6 loads checkpoints with ``weights_only=True``; mmengine 0.10.7 calls plain
``torch.load`` for ``--resume`` and ``load_from``, which then fails on the message-hub state and
numpy values mmengine stores in ``meta``. Rather than switching the safety off, we allow-list
exactly the (data-only) types found in checkpoints written by our configs. The list was taken
from ``torch.serialization.get_unsafe_globals_in_checkpoint`` on such checkpoints; the test
suite resumes with safe loading on, so a new type shows up as a failing test.
"""
from typing import List

import numpy as np
import torch

__all__ = ['checkpoint_safe_globals', 'register_checkpoint_safe_globals']


def checkpoint_safe_globals() -> List[object]:
    """The classes and functions our checkpoints reference, all plain data holders."""
    from mmengine.logging.history_buffer import HistoryBuffer

    safe = [
        HistoryBuffer,  # mmengine MessageHub log scalars (meta.message_hub)
        np.ndarray,
        np.dtype,
        np.core.multiarray._reconstruct,  # how numpy arrays pickle
        np.core.multiarray.scalar,  # how numpy scalars pickle
    ]
    # numpy 2 pickles dtypes by their concrete class (np.dtypes.Float64DType, ...)
    safe += [
        getattr(np.dtypes, name) for name in dir(np.dtypes)
        if name.endswith('DType')
    ]
    return safe


def register_checkpoint_safe_globals() -> None:
    """Add :func:`checkpoint_safe_globals` to torch's ``weights_only`` allow-list."""
    torch.serialization.add_safe_globals(checkpoint_safe_globals())
