from .knn_loss import find_neighbours, knn_contrastive_loss

__all__ = ['find_neighbours', 'knn_contrastive_loss']
