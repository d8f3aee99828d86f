from .dual_queue_head import DualQueueHead

__all__ = ['DualQueueHead']
