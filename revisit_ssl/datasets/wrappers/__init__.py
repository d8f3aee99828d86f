from .pareto_long_tail import IMAGENET_LT, ParetoLongTailDataset, pareto_class_counts
from .subset_wrapper import SubsetDatasetWrapper, get_single_labels
from .uniform_subset import UniformSubsetDataset, balanced_class_quota

__all__ = [
    'IMAGENET_LT', 'ParetoLongTailDataset', 'pareto_class_counts', 'SubsetDatasetWrapper',
    'get_single_labels', 'UniformSubsetDataset', 'balanced_class_quota'
]
