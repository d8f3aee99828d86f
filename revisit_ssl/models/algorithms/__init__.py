from .knn_moco import KNNMoCo, UnswitchedWarmupError

__all__ = ['KNNMoCo', 'UnswitchedWarmupError']
