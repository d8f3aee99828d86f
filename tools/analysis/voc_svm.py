"""VOC07 linear-SVM classification benchmark of a frozen pretrained backbone.

The "VOC SVM" number of self-supervised papers (Goyal et al., ICCV 2019 benchmark): features of
the frozen backbone (global-average-pooled last stage, centre crop, L2-normalised), one linear
SVM per class trained on VOC2007 ``trainval`` with the cost chosen by 3-fold cross-validated
AP, test mAP on VOC2007 ``test``. Images where a class appears only as *difficult* are
negatives for training and ignored in that class's AP.

The headline AP method is ``--ap-method`` (default ``area``: the VOC2010+ all-point
interpolated AP that Goyal et al.'s benchmark reports; ``11point`` is the VOC2007 devkit's);
both are written to the result file.

Example::

    python tools/analysis/voc_svm.py configs/knn_moco_coco.py CKPT \\
        --voc-root data/VOCdevkit/VOC2007
    # the demo VOC tree: its trainval holds the val images, so train on train
    python tools/analysis/voc_svm.py configs/knn_moco_demo.py CKPT \\
        --voc-root data/demo/VOCdevkit/VOC2012 --train-split train --test-split val \\
        --img-size 32
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import revisit_ssl  # noqa: E402,F401  registers components and checkpoint safe globals
from revisit_ssl.evaluation import (AP_METHODS, DEFAULT_SVM_COSTS,  # noqa: E402
                                    ImageListDataset, eval_pipeline,
                                    load_voc_classification, voc_svm_benchmark)
from revisit_ssl.evaluation.tool_utils import (  # noqa: E402
    add_loader_args, add_model_args, add_resolution_args, build_extractor,
    default_out_path, extract, write_result)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='VOC07 SVM classification (per-class linear SVMs, '
        'cross-validated cost, test mAP) on frozen backbone features.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser)
    parser.add_argument(
        '--voc-root',
        default='data/VOCdevkit/VOC2007',
        help='VOC folder with ImageSets/Main/<split>.txt, Annotations/*.xml '
        'and JPEGImages/*.jpg')
    parser.add_argument('--train-split', default='trainval')
    parser.add_argument('--test-split', default='test')
    add_resolution_args(parser)
    parser.add_argument(
        '--costs',
        type=float,
        nargs='+',
        default=list(DEFAULT_SVM_COSTS),
        help='SVM cost sweep')
    parser.add_argument('--folds', type=int, default=3,
                        help='cross-validation folds for the cost choice')
    parser.add_argument(
        '--ap-method',
        choices=AP_METHODS,
        default='area',
        help="headline AP: 'area' (VOC2010+, Goyal et al.) or '11point' "
        '(VOC2007 devkit); both are written')
    parser.add_argument('--max-iter', type=int, default=2000)
    parser.add_argument('--seed', type=int, default=0)
    add_loader_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    extractor, model_info, _ = build_extractor(args)
    train = load_voc_classification(args.voc_root, args.train_split)
    test = load_voc_classification(args.voc_root, args.test_split,
                                   train.classes)
    overlap = set(train.img_paths) & set(test.img_paths)
    if overlap:
        raise ValueError(
            f'{len(overlap)} images are in both --train-split '
            f'{args.train_split!r} and --test-split {args.test_split!r}; '
            'choose disjoint image sets')
    pipeline = eval_pipeline(args.img_size or 224, args.resize_size)
    train_x, _ = extract(extractor, ImageListDataset(train.img_paths, pipeline),
                         args, args.train_split)
    test_x, _ = extract(extractor, ImageListDataset(test.img_paths, pipeline),
                        args, args.test_split)
    bench = voc_svm_benchmark(
        train_x.numpy(),
        train.targets,
        test_x.numpy(),
        test.targets,
        test.difficult,
        costs=args.costs,
        num_folds=args.folds,
        ap_method=args.ap_method,
        seed=args.seed,
        max_iter=args.max_iter,
        progress=not args.no_progress)
    for entry, name in zip(bench['per_class'], train.classes):
        entry['class'] = name
    result = dict(
        tool='voc_svm',
        config=args.config,
        model=model_info,
        data=dict(
            voc_root=args.voc_root,
            train_split=args.train_split,
            test_split=args.test_split,
            classes=list(train.classes),
            num_train=len(train.img_paths),
            num_test=len(test.img_paths),
            pipeline=pipeline),
        **bench)
    out = write_result(result, args.out or default_out_path(args, 'voc_svm'))
    evaluated = sum(e['ap_area'] is not None for e in bench['per_class'])
    print(f"VOC07 SVM mAP ({bench['ap_method']}): {bench['mAP']:.2f}  "
          f"(11-point {bench['mAP_11point']:.2f}, area "
          f"{bench['mAP_area']:.2f}; {evaluated}/{len(train.classes)} classes "
          'with positives)')
    if bench['not_converged']:
        print(f"note: {bench['not_converged']} SVM fits stopped at "
              f'--max-iter {args.max_iter}')
    print(f'results written to {out}')
    return result


if __name__ == '__main__':
    main()
