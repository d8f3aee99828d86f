"""Seed torch's generators before every training step from (seed, step, rank)."""
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from revisit_ssl.datasets.samplers.sample_seeds import hash_to_seed

__all__ = ['StepSeedHook', 'step_seed']

# SeedSequence's spawn key of the step stream. sample_seed (the data's per-sample seeds,
# revisit_ssl/datasets/samplers/sample_seeds.py) hashes (seed, epoch, index) with no spawn key:
# without one here, step i of rank r would get sample r's seed of epoch i.
_STEP_STREAM = 1


def step_seed(seed: int, iteration: int, rank: int) -> int:
    """The 64-bit seed of training step ``iteration`` on ``rank`` in a run seeded ``seed``.

    A hash (numpy's ``SeedSequence``, fixed and platform-independent) of the three numbers, as
    :func:`~revisit_ssl.datasets.samplers.sample_seed`, in a stream of its own (another spawn
    key), so that no step shares its seed with a sample.

    Args:
        seed (int): The run's seed (``runner.seed``), in ``[0, 2**32)``.
        iteration (int): The step, counted over the run from 0 (``runner.iter``).
        rank (int): The process's global rank.

    Returns:
        int: A seed in ``[0, 2**64)``.
    """
    return hash_to_seed('step_seed', stream=(_STEP_STREAM, ), seed=seed,
                        iteration=iteration, rank=rank)


@HOOKS.register_module()
class StepSeedHook(Hook):
    """Makes a step's random draws on the model side a function of (seed, step, rank).

    mmengine seeds torch's generators once, when the runner is built, and neither saves nor
    restores their state, so after ``--resume`` they run a stream that an uninterrupted run
    never had. On the model side that stream decides shuffle-BN's permutation (mmpretrain's
    ``batch_shuffle_ddp`` draws ``torch.randperm`` on rank 0 and broadcasts it) and the
    per-sample parameters of ``DeviceViewAugmentPreprocessor`` (torch's generator on the
    batch's device, per rank). Before every training step this hook seeds torch's CPU and
    CUDA generators (``torch.manual_seed``) with :func:`step_seed` of (``runner.seed``,
    ``runner.iter``, ``runner.rank``): a resumed run draws what the uninterrupted run drew at
    the same step, and each rank draws its own values. Nothing needs to go into the checkpoint:
    ``runner.seed`` is in every checkpoint's ``meta`` and mmengine's resume takes it back.

    One more piece of mmengine's order is set right here: the train loader (and its sampler,
    with ``seed=runner.seed``) is built before the resume, so with ``randomness.seed=None`` the
    sampler has the seed this process drew, not the checkpoint's that ``runner.seed`` becomes:
    another shuffle and, with ``PerSampleSeedSampler``, other augmentations. After a resume
    that changed ``runner.seed``, a sampler that holds the seed the runner was built with gets
    the checkpoint's (a sampler seed set in the config, another value, is left alone). This
    takes effect for epoch-based loops (the recipes'), whose loader is iterated after
    ``before_train``; ``IterBasedTrainLoop`` starts iterating its loader when it is built, so
    there set ``randomness.seed`` for an exact resume.

    Left alone: Python's ``random`` and numpy's global generator (nothing on the model side
    draws from them; the data pipeline, which does, is seeded per sample by
    ``PerSampleSeedSampler``), and what the loader produces (the shuffle uses the sampler's own
    generator, and the pipeline's draws depend on the per-sample seeds, not on the training
    process's generator or the workers' base seeds drawn from it). Reseeding costs a few
    microseconds per step.

    ``configs/_base_/default_runtime.py`` adds it to ``default_hooks`` (as ``step_seed``), so
    configs that replace ``custom_hooks`` keep it.
    """

    # first in before_train_iter: other hooks' draws in this step come from its seed too
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._built_seed: Optional[int] = None

    def before_run(self, runner) -> None:
        """Note the seed the runner (and its train loader) was built with, before a resume."""
        self._built_seed = runner.seed

    def before_train(self, runner) -> None:
        """Give the sampler the checkpoint's seed where the resume changed ``runner.seed``."""
        if self._built_seed is None or runner.seed == self._built_seed:
            return
        loader = runner.train_dataloader
        # a batch sampler (mmengine's batch_sampler=...) holds the sampler; torch's own
        # BatchSampler holds loader.sampler
        sampler = getattr(getattr(loader, 'batch_sampler', None), 'sampler',
                          getattr(loader, 'sampler', None))
        if getattr(sampler, 'seed', None) == self._built_seed:
            sampler.seed = runner.seed
            print_log(
                f'StepSeedHook: the train sampler was built with seed {self._built_seed} '
                f'before the resume; it now uses the checkpoint\'s seed {runner.seed}, as '
                f'the run it continues did.',
                logger='current')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[Sequence[dict]] = None) -> None:
        """Seed torch's generators for this step."""
        torch.manual_seed(step_seed(runner.seed, runner.iter, runner.rank))
