"""Linear probe of a frozen pretrained backbone (the kNN-MoCo paper's small-dataset protocol).

Features of the frozen backbone without augmentation (global-average-pooled last stage, centre
crop), then scikit-learn's multinomial logistic regression fitted with L-BFGS; the L2 strength
is chosen on a validation split among 45 log-spaced values in [1e-5, 1e5], the probe refitted
on all training data with it and top-1 reported on the test split. Without ``--val-split`` a
stratified 20% of the training split is the validation split.

``--voc07`` instead fits one binary probe per class on VOC07 ``trainval`` and reports the test
mAP (VOC07 classification; AP method per ``--ap-method``, both are written).

Examples::

    python tools/analysis/linear_probe.py configs/knn_moco_demo.py \\
        work_dirs/knn_moco_demo/epoch_40.pth --data-root data/demo --img-size 32
    python tools/analysis/linear_probe.py configs/knn_moco_demo.py CKPT --voc07 \\
        --voc-root data/VOCdevkit/VOC2007
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import revisit_ssl  # noqa: E402,F401  registers components and checkpoint safe globals
from revisit_ssl.evaluation import (AP_METHODS, ImageListDataset,  # noqa: E402
                                    dataset_labels, eval_pipeline,
                                    folder_dataset, l2_strength_grid,
                                    load_voc_classification, logistic_probe,
                                    voc_logistic_probe)
from revisit_ssl.evaluation.tool_utils import (  # noqa: E402
    add_folder_data_args, add_loader_args, add_model_args, build_extractor,
    default_out_path, extract, labelled_datasets, write_result)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Linear probe (multinomial logistic regression, L-BFGS, '
        'L2 strength chosen on a validation split) on frozen backbone '
        'features; writes top-1 (or VOC07 mAP with --voc07) to JSON/CSV.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser)
    add_folder_data_args(parser)
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
    voc = parser.add_argument_group('VOC07 multi-label classification')
    voc.add_argument(
        '--voc07',
        action='store_true',
        help='one binary probe per class on a VOC layout, report mAP')
    voc.add_argument(
        '--voc-root',
        default='data/VOCdevkit/VOC2007',
        help='VOC folder with ImageSets/Main, Annotations and JPEGImages')
    voc.add_argument('--voc-train-split', default='trainval')
    voc.add_argument('--voc-test-split', default='test')
    voc.add_argument(
        '--ap-method',
        choices=AP_METHODS,
        default='area',
        help="headline AP: 'area' (VOC2010+ / Goyal et al. benchmark) or "
        "'11point' (VOC2007 devkit); both are written")
    add_loader_args(parser)
    return parser.parse_args(argv)


def run_voc07(args, extractor, model_info, grid) -> dict:
    train = load_voc_classification(args.voc_root, args.voc_train_split)
    test = load_voc_classification(args.voc_root, args.voc_test_split,
                                   train.classes)
    pipeline = eval_pipeline(args.img_size or 224, args.resize_size)
    train_x, _ = extract(extractor, ImageListDataset(train.img_paths, pipeline),
                         args, args.voc_train_split)
    test_x, _ = extract(extractor, ImageListDataset(test.img_paths, pipeline),
                        args, args.voc_test_split)
    result = voc_logistic_probe(
        train_x.numpy(),
        train.targets,
        test_x.numpy(),
        test.targets,
        test.difficult,
        strengths=grid,
        holdout_fraction=args.holdout_fraction,
        ap_method=args.ap_method,
        max_iter=args.max_iter,
        seed=args.seed,
        progress=not args.no_progress)
    for entry, name in zip(result['per_class'], train.classes):
        entry['class'] = name
    data = dict(
        voc_root=args.voc_root,
        train_split=args.voc_train_split,
        test_split=args.voc_test_split,
        classes=list(train.classes),
        num_train=len(train.img_paths),
        num_test=len(test.img_paths),
        pipeline=pipeline)
    return dict(tool='linear_probe', protocol='voc07 binary logistic',
                config=args.config, model=model_info, data=data, **result)


def main(argv=None) -> dict:
    args = parse_args(argv)
    extractor, model_info, cfg = build_extractor(args)
    grid = l2_strength_grid(args.num_l2, args.l2_min, args.l2_max)
    if args.voc07:
        result = run_voc07(args, extractor, model_info, grid)
        print(f"VOC07 linear probe mAP ({result['ap_method']}): "
              f"{result['mAP']:.2f}  (11-point {result['mAP_11point']:.2f}, "
              f"area {result['mAP_area']:.2f})")
    else:
        train_set, test_set, data_info = labelled_datasets(args, cfg)
        train_x, train_y = extract(extractor, train_set, args, 'train')
        test_x, test_y = extract(extractor, test_set, args, 'test')
        val_x = val_y = None
        if args.val_split:
            if not args.data_root:
                raise ValueError('--val-split needs --data-root')
            val_set = folder_dataset(args.data_root, args.val_split,
                                     data_info['pipeline'],
                                     data_info['classes'])
            val_x, _ = extract(extractor, val_set, args, 'val')
            val_x, val_y = val_x.numpy(), dataset_labels(val_set)
            data_info['val_split'] = args.val_split
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
            progress=not args.no_progress)
        num_classes = len(data_info['classes'])
        result = dict(
            tool='linear_probe',
            protocol='multinomial logistic regression (L-BFGS)',
            config=args.config,
            model=model_info,
            data=data_info,
            chance_top1=100.0 / num_classes,
            **{k: v
               for k, v in probe.items() if k != 'predictions'})
        print(f"linear probe top-1: {result['top1']:.2f}%  (L2 strength "
              f"{result['best_l2']:.3g} chosen on the "
              f"{result['selection']}; chance {100.0 / num_classes:.2f}%)")
    if result.get('not_converged'):
        print(f"note: {result['not_converged']} fits stopped at --max-iter "
              f'{args.max_iter} before converging')
    out = write_result(result,
                       args.out or default_out_path(args, 'linear_probe'))
    print(f'results written to {out}')
    return result


if __name__ == '__main__':
    main()
