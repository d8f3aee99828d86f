from .knn_monitor_hook import KNNMonitorHook
from .knn_warmup_hook import KNNWarmupHook
from .skipped_image_report_hook import SkippedImageReportHook
from .step_seed_hook import StepSeedHook, step_seed
from .training_guard_hook import (EmptyEpochError, NonFiniteLossError,
                                  TrainingGuardError, TrainingGuardHook)

__all__ = [
    'KNNMonitorHook', 'KNNWarmupHook', 'SkippedImageReportHook', 'StepSeedHook', 'step_seed',
    'TrainingGuardHook', 'TrainingGuardError', 'EmptyEpochError', 'NonFiniteLossError'
]
