"""Switch kNN-MoCo's NN loss on after its warm-up."""
from typing import Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

__all__ = ['KNNWarmupHook']


@HOOKS.register_module()
class KNNWarmupHook(Hook):
    """Keeps the NN loss of `kNN-MoCo <https://arxiv.org/abs/2106.05967>`_ out of the total
    during its warm-up, then puts it in, as mmpretrain's ``DenseCLHook`` switches DenseCL's
    ``loss_lambda``.

    The schedule is the model's: ``model.knn_warmup_epochs`` (epoch-based loops) or
    ``model.knn_warmup_iters`` (either loop; needed with ``IterBasedTrainLoop``, which has no
    epochs). Before every training iteration the hook calls ``model.set_knn_active(now >=
    warm-up)`` from ``runner.epoch`` (or ``runner.iter``), so the state follows the runner's
    counters and is right after a resume, also one inside or across the warm-up. It keeps no
    state of its own.

    ``configs/_base_/default_runtime.py`` adds it to ``default_hooks`` (as ``knn_warmup``, a dict
    entry, so configs that replace ``custom_hooks`` keep it). A KNNMoCo with a warm-up and
    without this hook stops at its first step with the fix (see ``KNNMoCo.knn_active``).
    """

    priority = 'NORMAL'

    def before_train(self, runner) -> None:
        """Check the model and the loop, log the schedule, set the state of the first step."""
        model = get_ori_model(runner.model)
        if not hasattr(model, 'set_knn_active'):
            raise TypeError(
                f'KNNWarmupHook switches the NN loss of KNNMoCo; this runner '
                f'trains a {type(model).__name__}. Take it out of the config\'s '
                f'default_hooks (configs/_base_/default_runtime.py adds it as '
                f'knn_warmup; mmengine does not accept None for it there: '
                f'replace default_hooks with _delete_=True and the hooks you '
                f'want).')
        unit, start = self._schedule(runner, model)
        if model.has_knn_warmup:
            print_log(
                f'kNN warm-up: loss_knn enters the total from {unit} {start} '
                f'on (model.knn_warmup_{unit}s={start}); it is logged, '
                f'weighted 0, before.',
                logger='current')
        self._apply(runner, model)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[Sequence[dict]] = None) -> None:
        """Set the state for this iteration from the runner's counters."""
        self._apply(runner, get_ori_model(runner.model))

    @staticmethod
    def _schedule(runner, model) -> Tuple[str, int]:
        """``('epoch' | 'iter', first active one)``; errors where epochs cannot be counted."""
        if model.knn_warmup_iters is not None:
            return 'iter', model.knn_warmup_iters
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            return 'epoch', model.knn_warmup_epochs
        if not model.has_knn_warmup:
            return 'iter', 0
        loader = runner.train_dataloader
        per_epoch = ''
        if getattr(loader, 'batch_size', None):
            iters = len(loader.dataset) // (loader.batch_size * runner.world_size)
            per_epoch = (f' (one pass over the {len(loader.dataset)} images at '
                         f'{loader.batch_size} per process x '
                         f'{runner.world_size} process(es) is {iters} '
                         f'iterations: {model.knn_warmup_epochs} epochs = '
                         f'{iters * model.knn_warmup_epochs})')
        raise ValueError(
            f'{type(runner.train_loop).__name__} does not count epochs, so '
            f'model.knn_warmup_epochs={model.knn_warmup_epochs} cannot be '
            f'followed. Give the warm-up in iterations: --cfg-options '
            f'model.knn_warmup_iters=N{per_epoch}.')

    def _apply(self, runner, model) -> None:
        if not model.head.use_knn:  # MoCo-v2: no NN loss to switch
            model.set_knn_active(False)
            return
        unit, start = self._schedule(runner, model)
        now = runner.epoch if unit == 'epoch' else runner.iter
        active = now >= start
        if active and model._knn_active is False:
            print_log(
                f'kNN warm-up over at {unit} {now}: loss_knn enters the total',
                logger='current')
        model.set_knn_active(active)
