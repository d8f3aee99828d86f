from .knn_moco import KNNMoCo

__all__ = ['KNNMoCo']
