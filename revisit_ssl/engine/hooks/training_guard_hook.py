"""Stop a pretraining run that would exit 0 and be wrong, and keep its checkpoints resumable."""
import glob
import math
import os
import os.path as osp
import zipfile
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ..atomic_local_backend import TMP_SUFFIX, atomic_write
from .knn_warmup_hook import KNNWarmupHook

__all__ = [
    'TrainingGuardHook', 'TrainingGuardError', 'EmptyEpochError',
    'NonFiniteLossError', 'is_complete_checkpoint'
]


class TrainingGuardError(RuntimeError):
    """A run that cannot do what its config asks; the message names the fix."""


class EmptyEpochError(TrainingGuardError):
    """The training set is smaller than one global batch: an epoch has no iteration."""


class NonFiniteLossError(TrainingGuardError):
    """A loss or a weight about to be saved is NaN or infinite."""


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole ``torch.save`` file (a zip whose central directory, written
    last, can be read); a file truncated by a crash is not."""
    if not osp.isfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _last_checkpoint_pointer(work_dir: str) -> str:
    return osp.join(work_dir, 'last_checkpoint')


def _read_last_checkpoint(work_dir: str) -> Optional[str]:
    pointer = _last_checkpoint_pointer(work_dir)
    if not osp.exists(pointer):
        return None
    with open(pointer) as f:
        return f.read().strip()


def _format_losses(outputs: Dict[str, torch.Tensor]) -> str:
    terms = []
    for name, value in outputs.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().float().mean().item()
        terms.append(f'{name}={value:.4g}' if isinstance(value, float) else
                     f'{name}={value}')
    return ', '.join(terms)


@HOOKS.register_module()
class TrainingGuardHook(Hook):
    """Guards against the failures that otherwise end in a run that exits 0 and is wrong.

    * **Empty epochs** (``before_run``): a training set smaller than one global batch gives
      epochs of zero iterations (every kNN-MoCo loader drops the last partial batch, because
      the queues take whole global batches); mmengine would "train" and save random weights.
      Stops with the image count, batch per process, world size and the fix.
    * **Unswitched NN warm-up** (``before_run``): a model with a kNN warm-up and no
      :class:`~revisit_ssl.engine.hooks.KNNWarmupHook` (a config that replaced
      ``default_hooks``) stops before any data is loaded, with the fix.
    * **Checkpoint origin** (``before_run``): tells the model whether its weights will come from
      ``load_from`` or from a resume, so that a load error names what the user used.
    * **Crash recovery** (``before_run``, on resume): removes temporary files a crash left
      behind (see :class:`~revisit_ssl.engine.AtomicLocalBackend`) and, when ``last_checkpoint``
      is empty or names a file that is not a complete checkpoint, points it at the newest
      complete one, with a warning.
    * **Non-finite loss** (``after_train_iter``): stops at the first iteration whose loss (any
      term) is NaN or infinite on any rank, with the iteration, every loss term and the last good
      checkpoint. Runs before the checkpoint hook, so that step is never saved.
    * **Non-finite weights** (``before_save_checkpoint``): refuses to write a checkpoint whose
      weights or queues hold NaN or infinity, so ``last_checkpoint`` never names one.

    ``configs/_base_/default_runtime.py`` adds it to ``default_hooks`` (a dict, so configs that
    replace ``custom_hooks`` keep it).

    Args:
        check_finite (bool): Whether to check losses and saved weights for NaN / inf.
            Defaults to True.
    """

    priority = 'VERY_HIGH'  # before the CheckpointHook and the LoggerHook of the same step

    def __init__(self, check_finite: bool = True) -> None:
        self.check_finite = check_finite

    # ------------------------------------------------------------------ before the run

    def before_run(self, runner) -> None:
        self._check_epoch_has_iterations(runner)
        self._check_warmup_is_switched(runner)
        self._log_learning_rate(runner)
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        origin = self._checkpoint_origin(runner)
        if origin is not None and hasattr(model, 'checkpoint_origin'):
            model.checkpoint_origin = origin
        if runner.cfg.get('resume', False) and runner.cfg.get(
                'load_from') is None:
            self._repair_last_checkpoint(runner)

    @staticmethod
    def _check_warmup_is_switched(runner) -> None:
        """Stop before the first step when a warm-up is set and no hook will end it.

        Without :class:`KNNWarmupHook` the model would refuse its first step anyway; here the
        run stops before any data is loaded, with the same fix, as one ``ERROR:`` line.
        """
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not getattr(model, 'has_knn_warmup', False):
            return
        if not any(isinstance(hook, KNNWarmupHook) for hook in runner.hooks):
            raise TrainingGuardError(model.unswitched_warmup_message())

    @staticmethod
    def _checkpoint_origin(runner) -> Optional[str]:
        load_from = runner.cfg.get('load_from')
        if runner.cfg.get('resume', False):
            return (f'--resume {load_from}' if load_from else
                    f'--resume (the latest checkpoint in {runner.work_dir})')
        return f'load_from={load_from}' if load_from else None

    @staticmethod
    def _log_learning_rate(runner) -> None:
        """Say which lr the run uses: after mmengine's ``auto_scale_lr``, before any step."""
        loader = getattr(runner.train_loop, 'dataloader', None)
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        if loader is None or not hasattr(optim_wrapper, 'get_lr'):
            return
        lrs = sorted({round(lr, 10) for group in optim_wrapper.get_lr().values()
                      for lr in group})
        batch, world = loader.batch_size, runner.world_size
        scale = runner.cfg.get('auto_scale_lr') or {}
        written = runner.cfg.get('optim_wrapper', {}).get('optimizer',
                                                          {}).get('lr')
        if scale.get('enable', False):
            how = (f'the config\'s lr {written} is for a global batch of '
                   f'{scale["base_batch_size"]}, scaled linearly by '
                   f'auto_scale_lr')
        else:
            how = 'auto_scale_lr is off: the lr as the config writes it'
        print_log(
            f'Learning rate {", ".join(f"{lr:g}" for lr in lrs)} for a global '
            f'batch of {batch * world} ({batch} per process x {world} '
            f'process(es)); {how}.',
            logger='current')

    @staticmethod
    def _check_epoch_has_iterations(runner) -> None:
        loop = runner.train_loop
        loader = getattr(loop, 'dataloader', None)
        if loader is None or len(loader) > 0:
            return
        dataset = loader.dataset
        batch, world = loader.batch_size, runner.world_size
        per_rank = math.ceil(len(dataset) / world)
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        queue_len = getattr(getattr(model, 'head', None), 'queue_len', None)
        # the largest batch that fits and keeps the queue a whole number of global batches
        fits = max((b for b in range(1, per_rank + 1)
                    if queue_len is None or queue_len % (b * world) == 0),
                   default=1)
        raise EmptyEpochError(
            f'The training set has {len(dataset)} images '
            f'({type(dataset).__name__}'
            f'{", after its wrapper" if hasattr(dataset, "dataset") else ""}) '
            f'but one step takes {batch} per process x {world} process(es) = '
            f'{batch * world}; each process would get {per_rank} images and, '
            f'with drop_last={loader.drop_last} (the queues take whole global '
            f'batches), an epoch would have 0 iterations and nothing would be '
            f'trained. Add images, or lower the batch: --cfg-options '
            f'train_dataloader.batch_size={fits}'
            + (f' (a divisor of model.head.queue_len={queue_len})'
               if queue_len else '') + '.')

    def _repair_last_checkpoint(self, runner) -> None:
        work_dir = runner.work_dir
        if not is_main_process():
            return
        for tmp in glob.glob(osp.join(work_dir, f'.*{TMP_SUFFIX}')):
            print_log(
                f'Removing {tmp}: a checkpoint write interrupted by a crash.',
                logger='current',
                level=30)
            os.remove(tmp)
        named = _read_last_checkpoint(work_dir)
        if named is None or (named and is_complete_checkpoint(named)):
            return  # nothing to resume yet, or a good pointer
        complete = [
            p for p in glob.glob(osp.join(work_dir, '*.pth'))
            if is_complete_checkpoint(p)
        ]
        if not complete:
            raise TrainingGuardError(
                f'{_last_checkpoint_pointer(work_dir)} names {named!r}, which '
                f'is not a complete checkpoint, and {work_dir} holds no other: '
                f'there is nothing to resume. Remove the pointer to start '
                f'anew, or pass --resume PATH.')
        newest = max(complete, key=osp.getmtime)
        print_log(
            f'{_last_checkpoint_pointer(work_dir)} named {named!r}, which is '
            f'not a complete checkpoint (a crash during a save?); resuming '
            f'from the newest complete one, {newest}.',
            logger='current',
            level=30)
        atomic_write(_last_checkpoint_pointer(work_dir), newest.encode())

    # ------------------------------------------------------------------ during the run

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not self.check_finite or not outputs:
            return
        values = [v for v in outputs.values() if isinstance(v, torch.Tensor)]
        if not values:
            return
        finite = all(bool(torch.isfinite(v).all()) for v in values)
        # every rank must stop, not only the one whose loss broke
        flag = torch.tensor([0. if finite else 1.], device=values[0].device)
        all_reduce(flag)
        if flag.item() == 0:
            return
        last = _read_last_checkpoint(runner.work_dir)
        origin = ('' if not finite else
                  ' on another rank (this one stops with it)')
        raise NonFiniteLossError(
            f'Non-finite loss at iteration {runner.iter + 1} (epoch '
            f'{runner.epoch + 1}, step {batch_idx + 1} of the epoch){origin}: '
            f'{_format_losses(outputs)}. Stopped before anything of this step '
            f'was saved. Last good checkpoint: '
            f'{last or "none (no checkpoint was written yet)"}. Lower the lr '
            f'or clip gradients (optim_wrapper.clip_grad=dict(max_norm=...)), '
            f'then resume with --resume.')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.check_finite:
            return
        bad = [
            name for name, value in checkpoint.get('state_dict', {}).items()
            if isinstance(value, torch.Tensor) and value.is_floating_point()
            and not bool(torch.isfinite(value).all())
        ]
        if bad:
            last = _read_last_checkpoint(runner.work_dir)
            raise NonFiniteLossError(
                f'Refusing to save a checkpoint at iteration {runner.iter} '
                f'(epoch {runner.epoch + 1}): {len(bad)} tensors hold NaN or '
                f'inf (e.g. {", ".join(bad[:3])}). Last good checkpoint: '
                f'{last or "none"}. Lower the lr or clip gradients, then '
                f'resume with --resume.')
