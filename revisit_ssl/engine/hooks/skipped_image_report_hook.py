"""Log how many unreadable training images ``StrictLoadImageFromFile(skip_unreadable=True)``
skipped, after every epoch and at the end of training."""
from typing import Iterator, List

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from revisit_ssl.datasets.transforms.strict_load_image import (
    SkippedImageRecord, StrictLoadImageFromFile)

__all__ = ['SkippedImageReportHook', 'find_skip_records']


def _iter_transforms(obj, depth: int = 0) -> Iterator[object]:
    """Every transform of every pipeline of a dataset and the datasets it wraps."""
    if obj is None or depth > 8:
        return
    for attr in ('dataset', 'datasets'):  # wrappers, ConcatDataset
        inner = getattr(obj, attr, None)
        for sub in (inner if isinstance(inner, (list, tuple)) else [inner]):
            if sub is not None and sub is not obj:
                yield from _iter_transforms(sub, depth + 1)
    transforms = getattr(getattr(obj, 'pipeline', None), 'transforms', None)
    stack: List[object] = list(transforms or [])
    while stack:  # Compose inside RandomApply / RandomChoice ... holds .transforms too
        transform = stack.pop(0)
        yield transform
        stack.extend(getattr(transform, 'transforms', None) or [])


def find_skip_records(dataset) -> List[SkippedImageRecord]:
    """The skip records of the ``StrictLoadImageFromFile(skip_unreadable=True)`` transforms in
    ``dataset``'s pipelines (one per pipeline; a ConcatDataset can have several)."""
    records: List[SkippedImageRecord] = []
    for transform in _iter_transforms(dataset):
        if (isinstance(transform, StrictLoadImageFromFile) and transform.skip_unreadable
                and all(transform.skipped is not r for r in records)):
            records.append(transform.skipped)
    return records


@HOOKS.register_module()
class SkippedImageReportHook(Hook):
    """Report the unreadable images the training pipeline skipped.

    ``StrictLoadImageFromFile(skip_unreadable=True)`` logs each skipped file (path and reason)
    from the process that met it, a dataloader worker, and counts it in shared memory
    (:class:`~revisit_ssl.datasets.transforms.strict_load_image.SkippedImageRecord`). This hook
    reads those counts in the main process and logs, after every training epoch::

        Unreadable images: 3 skip(s) this epoch; 2 distinct file(s) skipped so far (max_skipped 100)

    and once after training the run's total. Under distributed training each rank builds its own
    dataset; the hook sums the ranks' counts (distinct per rank, summed). Counts start at 0 when
    the process starts (also after ``--resume``). The counts also go to the message hub as
    ``train/skipped_images`` (distinct files) for the next log lines.

    Example::

        train_pipeline = [dict(type='StrictLoadImageFromFile', skip_unreadable=True,
                               max_skipped=100), ...]
        custom_hooks = [dict(type='SkippedImageReportHook')]
    """

    priority = 'NORMAL'

    def __init__(self) -> None:
        self._records: List[SkippedImageRecord] = []
        self._events_before = 0

    def before_train(self, runner) -> None:
        self._records = find_skip_records(runner.train_dataloader.dataset)
        if not self._records:
            runner.logger.warning(
                'SkippedImageReportHook: the train pipeline has no '
                "dict(type='StrictLoadImageFromFile', skip_unreadable=True); unreadable "
                'images stop the run, and this hook has nothing to report.')
        self._events_before = self._totals()[0]

    def _totals(self):
        """``(events, distinct, max_skipped)``: skips and distinct skipped files summed over
        this process's records and all ranks, and the (per-process) limit."""
        counts = torch.tensor([[r.num_events, r.num_distinct] for r in self._records]
                              or [[0, 0]], dtype=torch.int64).sum(0)
        if get_world_size() > 1:
            all_reduce(counts)
        limit = max((r.capacity - 1 for r in self._records), default=0)
        return int(counts[0]), int(counts[1]), limit

    def _message(self, prefix: str, events: int, distinct: int, limit: int) -> str:
        ranks = get_world_size()
        per = f', per rank, summed over {ranks} ranks' if ranks > 1 else ''
        return (f'{prefix}{distinct} distinct file(s) skipped so far{per} '
                f'(max_skipped {limit}); each is named in a "Skipped unreadable image" '
                'warning' if distinct else f'{prefix}no file skipped so far')

    def after_train_epoch(self, runner) -> None:
        if not self._records:
            return
        events, distinct, limit = self._totals()
        epoch_events, self._events_before = events - self._events_before, events
        runner.message_hub.update_scalar('train/skipped_images', distinct)
        runner.logger.info(
            self._message(
                f'Unreadable images: {epoch_events} skip(s) in epoch {runner.epoch + 1}; ',
                events, distinct, limit))

    def after_train(self, runner) -> None:
        if not self._records:
            return
        events, distinct, limit = self._totals()
        runner.logger.info(
            self._message(
                f'Unreadable images, end of training: {events} skip(s) in total; ',
                events, distinct, limit).replace('so far', 'in this run'))
