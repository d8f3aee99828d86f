"""A DefaultSampler whose samples draw their augmentations from (seed, epoch, index)."""
from typing import Any, Iterator, List, Optional, Sequence, Sized

from mmengine.dataset import DefaultSampler
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import get_worker_info

from .sample_seeds import SeededIndex, sample_seed, seeded_global_rngs

__all__ = ['PerSampleSeedSampler', 'SeededFetch']


class SeededFetch:
    """A dataset's ``__getitems__``: load each sample of a batch under its own seeds.

    PyTorch's DataLoader fetches a batch with ``dataset.__getitems__(indices)`` when the
    dataset has one (``torch.utils.data._utils.fetch._MapDatasetFetcher``), in the worker
    process, or in the training process when ``num_workers=0``. This one runs
    ``dataset[index]`` for each :class:`SeededIndex` inside :func:`seeded_global_rngs` of its
    :attr:`SeededIndex.sample_seed`. In the training process (``num_workers=0``) the global
    generators are restored after each sample; a worker needs no restore, since each of its
    samples is seeded afresh and nothing else there draws from them.

    Args:
        dataset (Sized): The dataset it fetches from (the one it is installed on).
    """

    def __init__(self, dataset: Sized) -> None:
        self.dataset = dataset

    def __call__(self, indices: Sequence[int]) -> List[Any]:
        in_training_process = get_worker_info() is None
        samples = []
        for index in indices:
            if not isinstance(index, SeededIndex):
                raise TypeError(
                    f'{type(self.dataset).__name__} is fetched under per-sample seeds '
                    f'(PerSampleSeedSampler), but got the index {index!r} without a seed: a '
                    'batch sampler or sampler wrapper turned the sampler\'s SeededIndex '
                    'objects into plain ints, or another sampler iterates this dataset '
                    'object. Pass the indices through unchanged, give the other loader its '
                    "own dataset, or use sampler=dict(type='DefaultSampler').")
            with seeded_global_rngs(index.sample_seed, restore=in_training_process):
                samples.append(self.dataset[int(index)])
        return samples


@DATA_SAMPLERS.register_module()
class PerSampleSeedSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` whose samples' random draws depend on (seed, epoch, index).

    The shuffle and the split over ranks are ``DefaultSampler``'s. In addition, every random
    draw of the data pipeline (python ``random``, numpy's global RNG, torch's CPU RNG, which
    the transforms of mmcv, mmpretrain and this project use) becomes a function of the run's
    seed, the epoch and the sample's index alone (:func:`sample_seed`), not of which worker
    process loads the sample or what that worker loaded before. Hence:

    - resuming at an epoch boundary replays the same augmentations as an uninterrupted run,
      also with ``persistent_workers=True`` (whose workers otherwise carry one random stream
      across epochs, seeded once from (seed, rank, worker id) by mmengine);
    - ``num_workers`` 0, 1, 2, ... give the same batches;
    - on several ranks each rank draws for its own indices, and a sample gets the same views
      whichever rank loads it.

    How: ``__iter__`` yields :class:`SeededIndex` objects, ints that carry (seed, epoch), and
    the sampler installs :class:`SeededFetch` as the dataset's ``__getitems__``, which the
    DataLoader calls with each batch of indices and which seeds the global RNGs per sample
    (and restores them after, so ``num_workers=0`` leaves the training process's stream
    alone). The epoch thus travels with the indices through the DataLoader's index queue:
    no state shared with the workers, no assumption on when ``set_epoch`` runs relative to
    prefetching (the epoch is the one ``__iter__`` saw, as for the shuffle), and the dataset
    stays picklable. ``dataset.data_root``, ``.indices``, ``.pipeline`` config paths are
    unchanged (no dataset wrapper); any dataset wrapper (``UniformSubsetDataset``,
    ``ParetoLongTailDataset``, mmengine's ``RepeatDataset``...) works, since the index is the
    sampler's, i.e. the outermost dataset's.

    Conditions and limits:

    - ``set_epoch`` must be called each epoch, as for the shuffle (mmengine's
      ``DistSamplerSeedHook``, in the default hooks, does this before each epoch);
    - the DataLoader must batch (``batch_size`` set, as mmengine requires): without
      batching PyTorch calls ``dataset[index]`` directly and bypasses ``__getitems__``;
    - the ``round_up`` padding repeats up to ``world_size - 1`` indices per epoch; a repeated
      index gets the same views as its first occurrence;
    - transforms that draw from their own generators (``np.random.default_rng()`` without a
      seed, OS entropy) are outside its reach.

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Shuffle the indices each epoch. Defaults to True.
        seed (int, optional): Seed of the shuffle and of the per-sample draws, identical on
            all ranks. mmengine's ``Runner.build_dataloader`` passes ``randomness.seed``.
            None draws one and syncs it over ranks. Defaults to None.
        round_up (bool): Pad the indices to a multiple of the world size. Defaults to True.
    """

    def __init__(self,
                 dataset: Sized,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True) -> None:
        super().__init__(dataset, shuffle=shuffle, seed=seed, round_up=round_up)
        sample_seed(self.seed, 0, 0)  # a bad seed fails here, not in a worker mid-epoch
        # A class-level __getitems__ (e.g. torch's Subset) is shadowed: SeededFetch
        # fetches sample by sample, which is what that batched path must equal.
        try:
            dataset.__getitems__ = SeededFetch(dataset)
        except AttributeError as error:
            raise TypeError(
                f'PerSampleSeedSampler cannot install its per-sample seeding on '
                f'{type(dataset).__name__} (attributes cannot be set on it: {error}); '
                "use sampler=dict(type='DefaultSampler') for this dataset.") from error

    def __iter__(self) -> Iterator[SeededIndex]:
        """The indices of this rank for the current epoch, each with (seed, epoch)."""
        return iter([
            SeededIndex(index, self.seed, self.epoch) for index in super().__iter__()
        ])
