"""Faults injected into training runs by tests/test_first_run_guards.py.

Imported by the training subprocess through ``custom_imports`` (``PYTHONPATH`` points here):

* ``NaNInjectionHook``: writes NaN into the online backbone's first conv at a chosen
  iteration, before its forward (``when='before'``: the loss of that step is NaN) or after it
  (``when='after'``: the loss was finite, the weights about to be saved are not).
* the ``slow_atomic_local`` file backend: the atomic checkpoint writer, but the write of the
  file whose name contains ``$CRASH_ON`` stops half-way, touches ``$CRASH_SIGNAL`` and sleeps,
  so the test can ``kill -9`` the run in the middle of a checkpoint save.
"""
import os
import time

import torch
from mmengine.fileio import register_backend
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from revisit_ssl.engine import AtomicLocalBackend


@HOOKS.register_module()
class NaNInjectionHook(Hook):
    priority = 'LOWEST'

    def __init__(self, iteration: int, when: str = 'before') -> None:
        self.iteration = iteration  # 1-based, as the guard reports it
        self.when = when

    def _inject(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        with torch.no_grad():
            model.backbone.conv1.weight.fill_(float('nan'))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.when == 'before' and runner.iter + 1 == self.iteration:
            self._inject(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.when == 'after' and runner.iter + 1 == self.iteration:
            self._inject(runner)


@register_backend('slow_atomic_local')
class SlowAtomicLocalBackend(AtomicLocalBackend):

    @staticmethod
    def _write(f, data: bytes) -> None:
        if os.environ.get('CRASH_ON', '\0') not in f.name:
            f.write(data)
            return
        f.write(data[:len(data) // 2])
        f.flush()
        open(os.environ['CRASH_SIGNAL'], 'w').close()
        time.sleep(300)  # killed here
        f.write(data[len(data) // 2:])
