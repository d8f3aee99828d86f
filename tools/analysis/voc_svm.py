"""VOC07 linear-SVM classification benchmark of a frozen pretrained backbone.

The "VOC SVM" number of self-supervised papers (Goyal et al., ICCV 2019 benchmark): features of
the frozen backbone (global-average-pooled last stage, centre crop, L2-normalised), one linear
SVM per class trained on VOC2007 ``trainval`` with the cost chosen by 3-fold cross-validated
AP, test mAP on VOC2007 ``test``. Images where a class appears only as *difficult* are
negatives for training and ignored in that class's AP.

The headline AP method is ``--ap-method`` (default ``area``: the VOC2010+ all-point
interpolated AP that Goyal et al.'s benchmark reports; ``11point`` is the VOC2007 devkit's);
both are written to the result file.

``--protocol release`` runs the paper release's protocol instead (its ``evaluation/voc_svm``,
which gave the paper's "VOC SVM" numbers): a fixed cost C = 0.5 (no cross-validation), class
weight {1: 2}, features divided by (L2 norm + 1e-5), and images where a class is only
*difficult* counted as negatives in training and in the test AP (area AP).

Example::

    python tools/analysis/voc_svm.py configs/knn_moco_coco.py CKPT \\
        --voc-root data/VOCdevkit/VOC2007
    python tools/analysis/voc_svm.py configs/knn_moco_coco.py CKPT \\
        --voc-root data/VOCdevkit/VOC2007 --protocol release
    # the demo VOC tree: its trainval holds the val images, so train on train
    python tools/analysis/voc_svm.py configs/knn_moco_demo.py CKPT \\
        --voc-root data/demo/VOCdevkit/VOC2012 --train-split train --test-split val \\
        --img-size 32
"""
import argparse

import revisit_ssl  # noqa: F401  registers components and checkpoint safe globals
from revisit_ssl.evaluation import (DEFAULT_SVM_COSTS, RELEASE_SVM_COST,
                                    SVM_PROTOCOLS, voc_svm_benchmark,
                                    voc_svm_release)
from revisit_ssl.evaluation.tool_utils import (add_loader_args,
                                               add_model_args,
                                               add_resolution_args,
                                               add_voc_args, build_extractor,
                                               default_out_path, voc_features,
                                               write_result)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='VOC07 SVM classification (per-class linear SVMs, '
        'cross-validated cost, test mAP) on frozen backbone features.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser)
    add_voc_args(parser)
    add_resolution_args(parser)
    parser.add_argument(
        '--protocol',
        choices=SVM_PROTOCOLS,
        default='cv',
        help="'cv': cost per class by cross-validated AP over --costs (Goyal "
        "et al.); 'release': the paper release's fixed C = "
        f'{RELEASE_SVM_COST}, difficult-only images as negatives in training '
        'and in the test AP')
    parser.add_argument(
        '--costs',
        type=float,
        nargs='+',
        default=list(DEFAULT_SVM_COSTS),
        help='SVM cost sweep (--protocol cv)')
    parser.add_argument('--folds', type=int, default=3,
                        help='cross-validation folds for the cost choice')
    parser.add_argument('--max-iter', type=int, default=2000)
    parser.add_argument('--seed', type=int, default=0)
    add_loader_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    # the release divides the raw pooled features by (norm + 1e-5) itself
    extractor, model_info, _ = build_extractor(
        args, l2_normalize=args.protocol != 'release')
    train, test, data = voc_features(args, extractor)
    if args.protocol == 'release':
        bench = voc_svm_release(
            train['x'],
            train['targets'],
            test['x'],
            test['targets'],
            ap_method=args.ap_method,
            max_iter=args.max_iter,
            progress=not args.no_progress)
    else:
        bench = voc_svm_benchmark(
            train['x'],
            train['targets'],
            test['x'],
            test['targets'],
            test['difficult'],
            costs=args.costs,
            num_folds=args.folds,
            ap_method=args.ap_method,
            seed=args.seed,
            max_iter=args.max_iter,
            progress=not args.no_progress)
        bench['protocol'] = 'cv'
    for entry, name in zip(bench['per_class'], data['classes']):
        entry['class'] = name
    result = dict(
        tool='voc_svm', config=args.config, model=model_info, data=data,
        **bench)
    out = write_result(result, args.out or default_out_path(args, 'voc_svm'))
    evaluated = sum(e['ap_area'] is not None for e in bench['per_class'])
    print(f"VOC07 SVM mAP ({bench['ap_method']}, {args.protocol} protocol): "
          f"{bench['mAP']:.2f}  "
          f"(11-point {bench['mAP_11point']:.2f}, area "
          f"{bench['mAP_area']:.2f}; {evaluated}/{len(data['classes'])} classes "
          'with positives)')
    if bench['not_converged']:
        print(f"note: {bench['not_converged']} SVM fits stopped at "
              f'--max-iter {args.max_iter}')
    print(f'results written to {out}')
    return result


if __name__ == '__main__':
    main()
