from .dual_queue_memory import DualQueueMemory

__all__ = ['DualQueueMemory']
