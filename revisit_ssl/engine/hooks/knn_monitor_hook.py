"""Online weighted-kNN accuracy of the backbone during self-supervised pretraining."""
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.dist import (broadcast_object_list, collect_results,
                           get_dist_info)
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

__all__ = ['KNNMonitorHook']


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Log the weighted kNN top-1 accuracy of the online backbone every few epochs.

    Researchers judge a pretraining run long before fine-tuning finishes; this hook gives the
    number they look at (InstDisc's weighted kNN, `Wu et al. 2018
    <https://arxiv.org/abs/1805.01978>`_, as in the kNN-MoCo paper): features of a labelled
    train split are the memory, every val image is classified by its ``k`` most cosine-similar
    memory features, each voting ``exp(sim / temperature)`` for its class.

    Features are the global-average-pooled last stage of ``model.backbone`` (the online
    encoder), L2-normalised, computed in eval mode (BN running statistics) and without
    gradients; every module's train/eval flag is restored afterwards. The input normalisation is
    copied from the model's data preprocessor. Under distributed training every rank extracts
    its shard (``DefaultSampler``), rank 0 classifies and broadcasts the accuracies.

    Results, ``knn_top1_k20``, ``knn_top1_k200``, ... in percent, go to

    * the log (one ``kNN monitor`` line per evaluation),
    * the visualizer (``scalars.json``, TensorBoard when enabled), step = training iteration,
    * the message hub as ``train/knn_top1_k20`` ..., so the next training log lines show them.

    A baseline is measured before the first training step (``eval_before_train``): the random
    initialisation, or the resumed weights.

    Args:
        train_dataloader (dict): Dataloader config of the labelled memory split, e.g. an
            mmpretrain ``CustomDataset`` with a deterministic test pipeline. ``sampler``
            defaults to an unshuffled ``DefaultSampler``.
        val_dataloader (dict): Dataloader config of the labelled query split (same classes).
        interval (int): Evaluate every ``interval`` epochs (iterations when ``by_epoch`` is
            False), and after the last one. Defaults to 1.
        topk (Sequence[int]): Neighbour counts ``k``. Each is capped at the memory size.
            Defaults to (20, 200).
        temperature (float): Vote temperature. Defaults to 0.07.
        eval_before_train (bool): Evaluate once before training starts. Defaults to True.
        by_epoch (bool): Count ``interval`` in epochs. Defaults to True.
        prefix (str): Name prefix of the logged scalars. Defaults to 'knn'.
    """

    priority = 'NORMAL'  # before the LoggerHook and the CheckpointHook of the same epoch

    def __init__(self,
                 train_dataloader: dict,
                 val_dataloader: dict,
                 interval: int = 1,
                 topk: Sequence[int] = (20, 200),
                 temperature: float = 0.07,
                 eval_before_train: bool = True,
                 by_epoch: bool = True,
                 prefix: str = 'knn') -> None:
        if not isinstance(train_dataloader, dict) or not isinstance(
                val_dataloader, dict):
            raise TypeError('KNNMonitorHook needs train_dataloader and '
                            'val_dataloader configs (dicts with a dataset)')
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if not topk or min(topk) < 1:
            raise ValueError(f'topk must list k >= 1, got {topk}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.dataloader_cfgs = dict(
            train_dataloader=train_dataloader, val_dataloader=val_dataloader)
        self.interval = interval
        self.topk = tuple(int(k) for k in topk)
        self.temperature = temperature
        self.eval_before_train = eval_before_train
        self.by_epoch = by_epoch
        self.prefix = prefix
        self._loaders: Optional[Dict[str, torch.utils.data.DataLoader]] = None
        self._num_classes: Optional[int] = None
        #: ``(iteration, epoch, {name: accuracy})`` of every evaluation, for callers and tests.
        self.history = []

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _check_paths(dataset: dict, key: str) -> None:
        """Name the hook's config key when a folder it reads is missing."""
        root = dataset.get('data_root') or ''
        prefix = dataset.get('data_prefix') or ''
        prefixes = prefix.values() if isinstance(prefix, dict) else [prefix]
        for path in [root] + [
                p if osp.isabs(p) else osp.join(root, p) for p in prefixes
                if isinstance(p, str) and p
        ]:
            if path and '://' not in path and not osp.exists(path):
                raise FileNotFoundError(
                    f'KNNMonitorHook: {path!r} does not exist ({key}). '
                    'Create the labelled split (for the demo: '
                    'tools/make_demo_data.py) or point the hook at yours: '
                    f'--cfg-options custom_hooks.N.{key}.data_root=/path/to/data'
                    ' (N = the position of KNNMonitorHook in custom_hooks)')

    def _build_loaders(self, runner) -> None:
        # the tools' data path too (imported here: `import revisit_ssl` stays free of
        # the evaluation package and scikit-learn)
        from revisit_ssl.evaluation.data import build_labelled_loaders
        for name, cfg in self.dataloader_cfgs.items():
            dataset = cfg.get('dataset')
            if not isinstance(dataset, dict):
                raise KeyError(f'KNNMonitorHook: {name} has no dataset config')
            self._check_paths(dataset, f'{name}.dataset')
        train, val = build_labelled_loaders(
            self.dataloader_cfgs['train_dataloader'],
            self.dataloader_cfgs['val_dataloader'], seed=runner.seed)
        self._num_classes = len(train.dataset.metainfo.get('classes')
                                or ()) or None
        self._loaders = dict(train_dataloader=train, val_dataloader=val)
        # which data the accuracies are of: a config that inherits one with a monitor and
        # changes only train_dataloader still evaluates on the monitor's own folders
        runner.logger.info('kNN monitor data: ' + ', '.join(
            f'{split} {self._describe(loader.dataset)}'
            for split, loader in (('train', train), ('val', val))) +
            f'; {self._num_classes or "?"} classes')

    @staticmethod
    def _describe(dataset) -> str:
        """``N images in /abs/folder`` of a built dataset (its image folder where it has one)."""
        prefix = getattr(dataset, 'data_prefix', None)
        folder = prefix.get('img_path') if isinstance(prefix, dict) else None
        folder = folder or getattr(dataset, 'data_root', None)
        if not folder:
            return f'{len(dataset)} images'
        if '://' not in folder:  # a local folder; a URL backend's prefix stays as it is
            folder = osp.abspath(folder)
        return f'{len(dataset)} images in {folder}'

    # -------------------------------------------------------------- evaluation
    @staticmethod
    def _unwrap(model):
        return model.module if is_model_wrapper(model) else model

    @torch.no_grad()
    def _extract(self, extractor, loader) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features and labels of this rank's shard, gathered to rank 0 in dataset order."""
        from revisit_ssl.evaluation import extract_features
        feats, labels = extract_features(extractor, loader, progress=False)
        if labels is None:
            raise ValueError('KNNMonitorHook needs labelled datasets: the data '
                             'samples carry no gt_label')
        parts = list(zip(feats, labels))
        _, world_size = get_dist_info()
        if world_size > 1:
            device = 'gpu' if torch.cuda.is_available() else 'cpu'
            parts = collect_results(parts, len(loader.dataset), device)
            if parts is None:  # not rank 0
                return None, None
        return (torch.stack([f for f, _ in parts]),
                torch.stack([lab for _, lab in parts]))

    def evaluate(self,
                 runner,
                 epoch: Optional[int] = None,
                 step: Optional[int] = None,
                 when: str = 'now') -> Dict[str, float]:
        """Run the kNN evaluation now and log it.

        Args:
            runner (Runner): The runner.
            epoch (int, optional): Finished epochs to log with. Defaults to ``runner.epoch``.
            step (int, optional): Finished iterations (the visualizer step). Defaults to
                ``runner.iter``.
            when (str): Words for the log line.

        Returns:
            dict[str, float]: ``{'knn_top1_k20': top-1 %, ...}``.
        """
        from revisit_ssl.evaluation import (FeatureExtractor, ImageNormalizer,
                                            knn_top1)
        if self._loaders is None:
            self._build_loaders(runner)
        model = self._unwrap(runner.model)
        if not hasattr(model, 'backbone'):
            raise AttributeError('KNNMonitorHook needs a model with a '
                                 '`backbone` (an mmpretrain self-supervisor)')
        # remember every module's flag: a submodule the model keeps in eval mode on purpose
        # (frozen stages, norm_eval) must come back exactly as it was
        modes = [(module, module.training) for module in model.modules()]
        model.eval()
        try:
            device = next(model.backbone.parameters()).device
            normalizer = ImageNormalizer.from_data_preprocessor(
                model.data_preprocessor).to(device)
            extractor = FeatureExtractor(model.backbone, normalizer)
            train_feats, train_labels = self._extract(
                extractor, self._loaders['train_dataloader'])
            val_feats, val_labels = self._extract(
                extractor, self._loaders['val_dataloader'])
        finally:
            for module, mode in modes:
                module.training = mode
        results = [None]
        rank, _ = get_dist_info()
        if rank == 0:
            num_classes = self._num_classes or int(
                max(train_labels.max(), val_labels.max())) + 1
            accs = knn_top1(train_feats.to(device), train_labels, val_feats,
                            val_labels, num_classes, self.topk,
                            self.temperature)
            results = [{
                f'{self.prefix}_top1_k{k}': round(acc, 4)
                for k, acc in accs.items()
            }]
        broadcast_object_list(results, src=0)
        scalars = results[0]
        epoch = runner.epoch if epoch is None else epoch
        step = runner.iter if step is None else step
        self.history.append((step, epoch, dict(scalars)))
        for name, value in scalars.items():
            runner.message_hub.update_scalar(f'train/{name}', value)
        # its own scalars.json record, so tools/analysis/plot_curves.py finds exact points
        runner.visualizer.add_scalars(scalars, step=step)
        text = ', '.join(f'{k}: {v:.2f}' for k, v in scalars.items())
        runner.logger.info(f'kNN monitor ({when}; epoch {epoch}, iter {step}, '
                           f'T={self.temperature}): {text}')
        return scalars

    # ------------------------------------------------------------------- hooks
    def before_train(self, runner) -> None:
        if self.eval_before_train:
            self.evaluate(
                runner,
                when='random-init baseline' if runner.iter == 0 else
                'resumed weights, before training')

    def after_train_epoch(self, runner) -> None:
        # runner.epoch still indexes the epoch that just ended; the loop advances it later
        if self.by_epoch and (self.every_n_epochs(runner, self.interval)
                              or self.is_last_train_epoch(runner)):
            self.evaluate(
                runner,
                epoch=runner.epoch + 1,
                when=f'after epoch {runner.epoch + 1}')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not self.by_epoch and (self.every_n_train_iters(
                runner, self.interval) or self.is_last_train_iter(runner)):
            self.evaluate(
                runner,
                step=runner.iter + 1,
                when=f'after iteration {runner.iter + 1}')
