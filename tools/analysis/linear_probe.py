"""Linear probe of a frozen pretrained backbone (the kNN-MoCo paper's small-dataset protocol).

Features of the frozen backbone without augmentation (global-average-pooled last stage, centre
crop), then scikit-learn's multinomial logistic regression fitted with L-BFGS; the L2 strength
is chosen on a validation split among 45 log-spaced values in [1e-5, 1e5], the probe refitted
on all training data with it and top-1 reported on the test split. Without ``--val-split`` a
stratified 20% of the training split is the validation split.

``--dataset NAME --data-root DIR`` reads one of the paper's Table 2 targets (cifar10,
stanford_cars, food101, oxford_pets, places365, sun397, voc07) from its standard layout with
torchvision's dataset classes (``download=False``; DIR is the root they take) and the splits of
Ericsson et al. 2021's many-shot protocol (``revisit_ssl/evaluation/transfer_datasets.py``).

``--voc07`` instead fits one binary probe per class on VOC07 ``trainval`` and reports the test
mAP (VOC07 classification; AP method per ``--ap-method``, both are written).

``--save-probe FILE`` saves the fitted classifier (weights with the feature standardisation
folded in, bias, class names, feature settings) for ``class_activation_maps.py``.

The last line printed is the headline: ``linear probe top-1: X.XX%`` (``linear probe mAP
(area): X.XX%`` for VOC07).

Examples::

    python tools/analysis/linear_probe.py configs/knn_moco_demo.py \\
        work_dirs/knn_moco_demo/epoch_40.pth --data-root data/demo --img-size 32
    python tools/analysis/linear_probe.py configs/knn_moco_coco.py CKPT \\
        --dataset food101 --data-root data/food101
    python tools/analysis/linear_probe.py configs/knn_moco_demo.py CKPT --voc07 \\
        --voc-root data/VOCdevkit/VOC2007
"""
import argparse
import os
import os.path as osp

import torch

import revisit_ssl  # noqa: F401  registers components and checkpoint safe globals
from revisit_ssl.evaluation import (dataset_labels, export_probe,
                                    folder_dataset, l2_strength_grid,
                                    load_voc_classification, logistic_probe,
                                    voc_logistic_probe)
from revisit_ssl.evaluation.tool_utils import (
    add_folder_data_args, add_loader_args, add_model_args, add_voc_args,
    build_extractor, default_out_path, extract, labelled_datasets,
    voc_features, write_result)
from revisit_ssl.evaluation.transfer_datasets import (DATASET_LAYOUTS,
                                                      TRANSFER_DATASETS,
                                                      transfer_splits,
                                                      voc07_root)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Linear probe (multinomial logistic regression, L-BFGS, '
        'L2 strength chosen on a validation split) on frozen backbone '
        'features; writes top-1 (or VOC07 mAP with --voc07) to JSON/CSV.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser)
    add_folder_data_args(parser)
    table2 = parser.add_argument_group(
        "the paper's Table 2 datasets (torchvision layouts)")
    table2.add_argument(
        '--dataset',
        choices=TRANSFER_DATASETS,
        default=None,
        help='read this dataset from its standard torchvision layout under '
        '--data-root (download=False) with the splits of Ericsson et al. '
        "2021's many-shot protocol, instead of class folders")
    table2.add_argument(
        '--places365-small',
        action='store_true',
        help='places365: the 256 x 256 images (data_256_standard/, val_256/)')
    table2.add_argument(
        '--sun397-partition',
        type=int,
        default=1,
        choices=range(1, 11),
        metavar='{1..10}',
        help='sun397: the official Training_NN / Testing_NN partition')
    parser.add_argument(
        '--save-probe',
        default=None,
        metavar='FILE',
        help='save the fitted classifier (weights, bias, class names, '
        'feature normalisation) for class_activation_maps.py')
    parser.add_argument(
        '--val-split',
        default=None,
        help='separate validation split folder for choosing the L2 strength '
        '(the final probe is then fitted on train + val); default: hold out '
        '--holdout-fraction of the training split')
    parser.add_argument('--holdout-fraction', type=float, default=0.2)
    parser.add_argument(
        '--num-l2', type=int, default=45, help='size of the L2 grid')
    parser.add_argument('--l2-min', type=float, default=1e-5)
    parser.add_argument('--l2-max', type=float, default=1e5)
    parser.add_argument(
        '--max-iter', type=int, default=1000, help='L-BFGS iterations per fit')
    parser.add_argument('--seed', type=int, default=0)
    voc = add_voc_args(parser, '--voc-train-split', '--voc-test-split')
    voc.add_argument(
        '--voc07',
        action='store_true',
        help='one binary probe per class on a VOC layout, report mAP')
    add_loader_args(parser)
    return parser.parse_args(argv)


def transfer_pipeline(img_size: int, resize_size=None) -> list:
    """Ericsson et al.'s evaluation transform: bicubic resize of the short edge to the crop
    size (``--resize-size`` to change), centre crop; torchvision loads the image."""
    return [
        dict(type='ResizeEdge', scale=resize_size or img_size, edge='short',
             interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=img_size),
        dict(type='PackInputs'),
    ]


def run_voc07(args, extractor, model_info, grid) -> dict:
    if args.dataset == 'voc07':  # Ericsson et al.: choose on val, refit on trainval
        voc_root = voc07_root(args.data_root)
        pipeline = [dict(type='LoadImageFromFile')] + transfer_pipeline(
            args.img_size or 224, args.resize_size)
        splits = {}
        for name in ('train', 'val', 'test'):
            split = load_voc_classification(
                voc_root, name,
                splits['train'][0].classes if splits else None, pipeline)
            x, _ = extract(extractor, split.dataset, args, name,
                           with_labels=False)
            splits[name] = (split, x.numpy())
        (train, train_x), (val, val_x), (test, test_x) = (
            splits[k] for k in ('train', 'val', 'test'))
        result = voc_logistic_probe(
            train_x, train.targets, test_x, test.targets, test.difficult,
            strengths=grid, ap_method=args.ap_method, max_iter=args.max_iter,
            seed=args.seed, progress=not args.no_progress, val_x=val_x,
            val_targets=val.targets)
        data = dict(dataset='voc07', data_root=args.data_root,
                    voc_root=voc_root, train_split='train', val_split='val',
                    final_fit='trainval (train + val)', test_split='test',
                    classes=list(train.classes),
                    num_train=len(train.img_paths), num_val=len(val.img_paths),
                    num_test=len(test.img_paths), pipeline=pipeline)
    else:
        train, test, data = voc_features(args, extractor)
        result = voc_logistic_probe(
            train['x'],
            train['targets'],
            test['x'],
            test['targets'],
            test['difficult'],
            strengths=grid,
            holdout_fraction=args.holdout_fraction,
            ap_method=args.ap_method,
            max_iter=args.max_iter,
            seed=args.seed,
            progress=not args.no_progress)
    for entry, name in zip(result['per_class'], data['classes']):
        entry['class'] = name
    return dict(tool='linear_probe', protocol='voc07 binary logistic',
                config=args.config, model=model_info, data=data, **result)


def single_label_data(args, cfg) -> tuple:
    """``(train, test, val or None, description)`` of the single-label flow."""
    if args.dataset:
        pipeline = transfer_pipeline(args.img_size or 224, args.resize_size)
        train, test, info = transfer_splits(
            args.dataset, args.data_root, pipeline, args.places365_small,
            args.sun397_partition)
        info.update(classes=list(train.metainfo['classes']),
                    num_train=len(train), num_test=len(test),
                    pipeline=pipeline)
        return train, test, None, info
    train, test, info = labelled_datasets(args, cfg)
    val = None
    if args.val_split:
        if not args.data_root:
            raise ValueError('--val-split needs --data-root')
        val = folder_dataset(args.data_root, args.val_split, info['pipeline'],
                             info['classes'])
        info['val_split'] = args.val_split
    return train, test, val, info


def save_probe(path: str, fitted: tuple, args, model_info: dict,
               data_info: dict) -> str:
    scaler, clf = fitted
    probe = export_probe(
        scaler, clf, data_info['classes'],
        # what class_activation_maps.py must redo to apply the probe
        features=dict(pool='global average of the last stage',
                      l2_normalize=True, encoder=args.encoder),
        pipeline=[dict(t) for t in data_info['pipeline']],
        config=args.config, checkpoint=args.checkpoint,
        dataset=data_info.get('dataset') or data_info.get('data_root'),
        best_l2=float(1.0 / clf.C))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save(probe, path)
    return path


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.dataset and args.voc07 and args.dataset != 'voc07':
        raise ValueError(f'--voc07 and --dataset {args.dataset} contradict '
                         'each other; pass one')
    if args.dataset and (args.val_split or args.train_split != 'train'
                         or args.test_split != 'val'):
        raise ValueError(
            f'--dataset {args.dataset} uses the splits of its protocol; '
            '--train-split / --test-split / --val-split are for class folders')
    if args.dataset and not args.data_root:
        raise ValueError(
            f'--dataset {args.dataset} needs --data-root DIR, the root '
            f'torchvision reads it from: {DATASET_LAYOUTS[args.dataset]}')
    voc = args.voc07 or args.dataset == 'voc07'
    if voc and args.save_probe:
        raise ValueError('--save-probe saves a single-label (multinomial) '
                         'probe; VOC07 fits 20 binary ones. Drop --save-probe '
                         'or use a single-label dataset')
    grid = l2_strength_grid(args.num_l2, args.l2_min, args.l2_max)
    # a missing dataset fails before the backbone is built
    if args.dataset == 'voc07':
        voc07_root(args.data_root)
    data = single_label_data(args, None) if args.dataset and not voc else None
    extractor, model_info, cfg = build_extractor(args)
    if voc:
        result = run_voc07(args, extractor, model_info, grid)
        headline = (f"linear probe mAP ({result['ap_method']}): "
                    f"{result['mAP']:.2f}%  (11-point "
                    f"{result['mAP_11point']:.2f}, area "
                    f"{result['mAP_area']:.2f}; lambda per class chosen on "
                    f"the {result['selection']})")
    else:
        train_set, test_set, val_set, data_info = data or single_label_data(
            args, cfg)
        train_x, train_y = extract(extractor, train_set, args, 'train')
        test_x, test_y = extract(extractor, test_set, args, 'test')
        val_x = val_y = None
        if val_set is not None:
            val_x, _ = extract(extractor, val_set, args, 'val')
            val_x, val_y = val_x.numpy(), dataset_labels(val_set)
        probe = logistic_probe(
            train_x.numpy(),
            train_y.numpy(),
            test_x.numpy(),
            test_y.numpy(),
            val_x,
            val_y,
            strengths=grid,
            holdout_fraction=args.holdout_fraction,
            max_iter=args.max_iter,
            seed=args.seed,
            progress=not args.no_progress,
            keep_model=bool(args.save_probe))
        num_classes = len(data_info['classes'])
        result = dict(
            tool='linear_probe',
            protocol='multinomial logistic regression (L-BFGS)',
            config=args.config,
            model=model_info,
            data=data_info,
            chance_top1=100.0 / num_classes,
            **{k: v
               for k, v in probe.items() if k not in ('predictions', 'fitted')})
        if args.save_probe:
            result['probe_file'] = save_probe(args.save_probe, probe['fitted'],
                                              args, model_info, data_info)
            print(f"probe saved to {result['probe_file']}")
        headline = (f"linear probe top-1: {result['top1']:.2f}%  (L2 strength "
                    f"{result['best_l2']:.3g} chosen on the "
                    f"{result['selection']}; chance {100.0 / num_classes:.2f}%)")
    if result.get('not_converged'):
        print(f"note: {result['not_converged']} fits stopped at --max-iter "
              f'{args.max_iter} before converging')
    out = write_result(result,
                       args.out or default_out_path(args, 'linear_probe'))
    print(f'results written to {out}')
    print(headline)  # last, so scripts can read it with tail -1
    return result


if __name__ == '__main__':
    main()
