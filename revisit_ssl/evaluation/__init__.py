"""Frozen-feature evaluation: feature extraction from a config + checkpoint, the weighted kNN
classifier, linear / SVM probes, VOC average precision, semantic segment retrieval, class
activation maps and DAVIS-2017 label propagation (J / F).

Used by the online :class:`~revisit_ssl.engine.hooks.KNNMonitorHook` and the offline tools in
``tools/analysis/``. Every function works on plain arrays, so it can be tested on toy data.
"""
from .average_precision import (AP_METHODS, voc_average_precision,
                                voc_mean_average_precision)
from .backbone_loader import (ENCODER_PREFIXES, RANDOM_INIT,
                              backbone_state_dict, build_backbone,
                              load_backbone, load_checkpoint_file, load_config)
from .class_activation_maps import (class_activation_map, load_probe,
                                    probe_logits)
from .convergence import fit_counting_unconverged
from .davis_metrics import (DAVISScores, boundary_f_measure, db_statistics,
                            evaluate_sequence, region_similarity)
from .data import (VOCClassificationSplit, build_eval_dataloader,
                   build_labelled_loaders, dataset_labels, eval_pipeline,
                   folder_dataset, load_voc_classification,
                   voc_segmentation_dataset)
from .feature_extractor import (FeatureExtractor, ImageNormalizer,
                                extract_features)
from .label_propagation import (load_davis_split, propagate_davis_sequence,
                                propagate_labels)
from .knn import knn_top1, weighted_knn_predict, weighted_knn_scores
from .linear_probe import (class_test_aps, export_probe, holdout_split,
                           l2_strength_grid, logistic_probe,
                           select_l2_strength, summarise_class_aps,
                           voc_logistic_probe)
from .segment_retrieval import (ImageRegions, accumulate_confusion,
                                cluster_regions, iou_from_confusion,
                                majority_labels, nearest_region_labels,
                                paint_regions, resize_label_map,
                                segment_retrieval_miou)
from .svm import (DEFAULT_SVM_COSTS, RELEASE_SVM_COST, SVM_PROTOCOLS,
                  fit_voc_svm, voc_svm_benchmark, voc_svm_estimator,
                  voc_svm_release)
from .transfer_datasets import (TRANSFER_DATASETS, load_transfer_split,
                                transfer_splits)

__all__ = [
    'AP_METHODS', 'voc_average_precision', 'voc_mean_average_precision',
    'ENCODER_PREFIXES', 'RANDOM_INIT', 'backbone_state_dict', 'build_backbone',
    'load_backbone', 'load_checkpoint_file', 'load_config',
    'class_activation_map', 'load_probe', 'probe_logits',
    'fit_counting_unconverged', 'DAVISScores', 'boundary_f_measure',
    'db_statistics', 'evaluate_sequence', 'region_similarity',
    'load_davis_split', 'propagate_davis_sequence', 'propagate_labels',
    'VOCClassificationSplit',
    'build_eval_dataloader', 'build_labelled_loaders', 'dataset_labels',
    'eval_pipeline', 'folder_dataset', 'load_voc_classification',
    'voc_segmentation_dataset',
    'FeatureExtractor', 'ImageNormalizer', 'extract_features', 'knn_top1',
    'weighted_knn_predict', 'weighted_knn_scores', 'class_test_aps',
    'export_probe', 'holdout_split', 'l2_strength_grid', 'logistic_probe',
    'select_l2_strength', 'summarise_class_aps', 'voc_logistic_probe',
    'ImageRegions', 'accumulate_confusion', 'cluster_regions',
    'iou_from_confusion', 'majority_labels', 'nearest_region_labels',
    'paint_regions', 'resize_label_map', 'segment_retrieval_miou',
    'DEFAULT_SVM_COSTS', 'RELEASE_SVM_COST', 'SVM_PROTOCOLS', 'fit_voc_svm',
    'voc_svm_benchmark', 'voc_svm_estimator', 'voc_svm_release',
    'TRANSFER_DATASETS', 'load_transfer_split', 'transfer_splits'
]
