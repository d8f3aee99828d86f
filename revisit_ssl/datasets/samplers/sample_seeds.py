"""Per-sample seeds: each sample's random draws as a function of (seed, epoch, index)."""
import random
from contextlib import contextmanager
from typing import Iterator, Tuple

import numpy as np
import torch

__all__ = ['sample_seed', 'hash_to_seed', 'seeded_global_rngs', 'SeededIndex']

_UINT32 = 1 << 32


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The 64-bit seed of sample ``index``'s random draws in ``epoch`` of a run seeded ``seed``.

    A hash (numpy's ``SeedSequence``) of the three numbers: any change of one gives an
    unrelated seed, and the same three always give the same seed, in every process and on every
    platform (``SeedSequence`` is a fixed, platform-independent hash; Python's ``hash()`` is
    salted per process and would not do).

    Args:
        seed (int): The run's seed (mmengine's ``randomness.seed``), in ``[0, 2**32)``.
        epoch (int): The epoch, in ``[0, 2**32)``.
        index (int): The sample's index in the dataset the sampler iterates, in ``[0, 2**32)``.

    Returns:
        int: A seed in ``[0, 2**64)``.
    """
    return hash_to_seed('sample_seed', seed=seed, epoch=epoch, index=index)


def hash_to_seed(caller: str, stream: Tuple[int, ...] = (), **values: int) -> int:
    """A 64-bit seed hashed from named ints in ``[0, 2**32)`` (numpy's ``SeedSequence``).

    The one derivation of the project's seeds (:func:`sample_seed`, and the step seeds of
    :class:`~revisit_ssl.engine.hooks.StepSeedHook`).

    Args:
        caller (str): Names the function in the errors.
        stream (tuple[int, ...]): ``SeedSequence``'s spawn key: derivations in different
            streams never share seeds for the same values. Defaults to () (the sample seeds).
        **values (int): The numbers, in order, each in ``[0, 2**32)``.

    Returns:
        int: A seed in ``[0, 2**64)``.
    """
    words = []
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f'{caller}: {name} must be an int, got {value!r}.')
        if not 0 <= value < _UINT32:
            raise ValueError(f'{caller}: {name} must lie in [0, 2**32), got {value}.')
        words.append(int(value))
    # A fixed-width uint32 word per number: a variable-length encoding could make two
    # different tuples hash the same words.
    entropy = np.array(words, dtype=np.uint32)
    sequence = np.random.SeedSequence(entropy, spawn_key=stream)
    return int(sequence.generate_state(1, np.uint64)[0])


@contextmanager
def seeded_global_rngs(seed: int, restore: bool = True) -> Iterator[None]:
    """Seed Python's ``random``, numpy's global RNG and torch's CPU RNG for a block.

    The transforms of mmcv, mmpretrain and this project draw from these global generators.
    Restoring them after the block keeps the caller's own stream untouched: with
    ``num_workers=0`` the data pipeline runs in the training process, whose random state then
    does not depend on the images it loaded. CUDA generators are neither seeded nor touched.

    Args:
        seed (int): A seed in ``[0, 2**64)``, e.g. from :func:`sample_seed`.
        restore (bool): Put the three generators back in their state before the block.
            Saving and restoring numpy's state costs about 0.1 ms; a DataLoader worker, whose
            every sample is seeded afresh, can skip it. Defaults to True.
    """
    if not 0 <= seed < _UINT32 * _UINT32:
        raise ValueError(f'seeded_global_rngs: seed must lie in [0, 2**64), got {seed}.')
    if restore:
        python_state = random.getstate()
        numpy_state = np.random.get_state()
        torch_state = torch.get_rng_state()
    random.seed(seed)
    # numpy's legacy seed takes 32-bit words; both halves keep all 64 bits.
    np.random.seed(np.array([seed % _UINT32, seed // _UINT32], dtype=np.uint32))
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        if restore:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
            torch.set_rng_state(torch_state)


class SeededIndex(int):
    """A dataset index that carries the run's seed and the epoch it was drawn for.

    It is an ``int`` (datasets, wrappers and batch samplers use it as one) that travels from
    the sampler, through the DataLoader's index queue (it pickles with its fields), to the
    worker that loads the sample, which takes the sample's seeds from it
    (:attr:`sample_seed`). Arithmetic on it gives plain ints.

    Args:
        index (int): The sample's index.
        seed (int): The run's seed.
        epoch (int): The epoch.
    """

    seed: int
    epoch: int

    def __new__(cls, index: int, seed: int, epoch: int) -> 'SeededIndex':
        obj = super().__new__(cls, index)
        obj.seed = int(seed)
        obj.epoch = int(epoch)
        return obj

    def __reduce__(self):
        return SeededIndex, (int(self), self.seed, self.epoch)

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, seed={self.seed}, epoch={self.epoch})'

    @property
    def sample_seed(self) -> int:
        """:func:`sample_seed` of (seed, epoch, index)."""
        return sample_seed(self.seed, self.epoch, int(self))
