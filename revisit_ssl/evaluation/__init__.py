"""Frozen-feature evaluation: feature extraction from a config + checkpoint, the weighted kNN
classifier, linear / SVM probes, VOC average precision and semantic segment retrieval.

Used by the online :class:`~revisit_ssl.engine.hooks.KNNMonitorHook` and the offline tools in
``tools/analysis/``. Every function works on plain arrays, so it can be tested on toy data.
"""
from .average_precision import (AP_METHODS, voc_average_precision,
                                voc_mean_average_precision)
from .backbone_loader import (ENCODER_PREFIXES, RANDOM_INIT,
                              backbone_state_dict, build_backbone,
                              load_backbone, load_checkpoint_file, load_config)
from .data import (ImageListDataset, VOCClassificationSplit, build_pipeline,
                   dataset_labels, eval_pipeline, folder_dataset,
                   load_voc_classification, load_voc_segmentation_ids,
                   make_dataloader, read_label_png)
from .feature_extractor import (FeatureExtractor, ImageNormalizer,
                                extract_features)
from .knn import knn_top1, weighted_knn_predict, weighted_knn_scores
from .linear_probe import (holdout_split, l2_strength_grid, logistic_probe,
                           select_l2_strength, summarise_class_aps,
                           voc_logistic_probe)
from .progress import track
from .segment_retrieval import (ImageRegions, accumulate_confusion,
                                cluster_regions, iou_from_confusion,
                                majority_labels, nearest_region_labels,
                                paint_regions, resize_label_map,
                                segment_retrieval_miou)
from .svm import DEFAULT_SVM_COSTS, fit_voc_svm, voc_svm_benchmark

__all__ = [
    'AP_METHODS', 'voc_average_precision', 'voc_mean_average_precision',
    'ENCODER_PREFIXES', 'RANDOM_INIT', 'backbone_state_dict', 'build_backbone',
    'load_backbone', 'load_checkpoint_file', 'load_config',
    'ImageListDataset', 'VOCClassificationSplit', 'build_pipeline',
    'dataset_labels', 'eval_pipeline', 'folder_dataset',
    'load_voc_classification', 'load_voc_segmentation_ids', 'make_dataloader',
    'read_label_png', 'FeatureExtractor', 'ImageNormalizer',
    'extract_features', 'knn_top1', 'weighted_knn_predict',
    'weighted_knn_scores', 'holdout_split', 'l2_strength_grid',
    'logistic_probe', 'select_l2_strength', 'summarise_class_aps',
    'voc_logistic_probe', 'track', 'ImageRegions', 'accumulate_confusion',
    'cluster_regions', 'iou_from_confusion', 'majority_labels',
    'nearest_region_labels', 'paint_regions', 'resize_label_map',
    'segment_retrieval_miou', 'DEFAULT_SVM_COSTS', 'fit_voc_svm',
    'voc_svm_benchmark'
]
