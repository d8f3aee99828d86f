"""Weighted kNN top-1 of a pretrained backbone on a labelled split.

The same classifier as the online ``KNNMonitorHook`` (InstDisc, Wu et al. 2018): cosine
similarity of L2-normalised, global-average-pooled last-stage features; the ``k`` nearest
training samples vote ``exp(sim / T)`` for their class.

Example::

    python tools/analysis/knn_eval.py configs/knn_moco_demo.py \\
        work_dirs/knn_moco_demo/epoch_40.pth --data-root data/demo --img-size 32
    python tools/analysis/knn_eval.py configs/knn_moco_demo.py random \\
        --data-root data/demo --img-size 32          # the random-init baseline
"""
import argparse
import csv

import revisit_ssl  # noqa: F401  registers components and checkpoint safe globals
from revisit_ssl.evaluation import knn_top1, weighted_knn_predict
from revisit_ssl.evaluation.tool_utils import (
    add_folder_data_args, add_loader_args, add_model_args, build_extractor,
    default_out_path, extract, labelled_datasets, write_result)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Weighted kNN classification (InstDisc) with frozen '
        'backbone features; writes top-1 per k to a JSON (or CSV) file.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser)
    add_folder_data_args(parser)
    parser.add_argument(
        '--k',
        type=int,
        nargs='+',
        default=[20, 200],
        help='neighbour counts (capped at the training split size)')
    parser.add_argument(
        '--temperature', type=float, default=0.07, help='vote temperature T')
    parser.add_argument(
        '--predictions',
        default=None,
        help='also write per-image predictions (of the first k) to this CSV')
    add_loader_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    extractor, model_info, cfg = build_extractor(args)
    train_set, test_set, data_info = labelled_datasets(args, cfg)
    train_feats, train_labels = extract(extractor, train_set, args, 'train')
    test_feats, test_labels = extract(extractor, test_set, args, 'test')
    num_classes = len(data_info['classes'])
    accs = knn_top1(train_feats, train_labels, test_feats, test_labels,
                    num_classes, args.k, args.temperature)
    result = dict(
        tool='knn_eval',
        config=args.config,
        model=model_info,
        data=data_info,
        temperature=args.temperature,
        k_effective={str(k): min(k, len(train_feats))
                     for k in args.k},
        chance_top1=100.0 / num_classes,
        top1={str(k): v
              for k, v in accs.items()})
    for k, v in accs.items():
        result[f'knn_top1_k{k}'] = v
    out = write_result(result, args.out or default_out_path(args, 'knn_eval'))
    if args.predictions:
        pred = weighted_knn_predict(train_feats, train_labels, test_feats,
                                    num_classes, args.k[0], args.temperature)
        classes = data_info['classes']
        with open(args.predictions, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['img_path', 'label', f'pred_k{args.k[0]}'])
            for i in range(len(test_set)):
                writer.writerow([
                    test_set.get_data_info(i)['img_path'],
                    classes[int(test_labels[i])], classes[int(pred[i])]
                ])
    for k, v in accs.items():
        print(f'kNN top-1 (k={k}, T={args.temperature}): {v:.2f}%  '
              f'(chance {100.0 / num_classes:.2f}%)')
    print(f'results written to {out}')
    return result


if __name__ == '__main__':
    main()
