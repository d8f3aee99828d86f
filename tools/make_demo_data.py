"""Write the procedural demo data set (deterministic for a seed, a few seconds).

Example::

    python tools/make_demo_data.py --out data/demo
    python tools/make_demo_data.py --out data/demo --formats cls voc cityscapes nyud davis
"""
import argparse
import os
import os.path as osp
import time

from revisit_ssl.utils.demo_data import make_demo_data
from revisit_ssl.utils.demo_writers import DEMO_WRITERS


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/demo', help='output folder')
    parser.add_argument(
        '--formats',
        nargs='+',
        default=sorted(DEMO_WRITERS),
        choices=sorted(DEMO_WRITERS),
        help='dataset layouts to write (default: all)')
    parser.add_argument('--num-train', type=int, default=480)
    parser.add_argument('--num-val', type=int, default=120)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--min-size', type=int, default=96)
    parser.add_argument('--max-size', type=int, default=160)
    return parser.parse_args()


def main():
    args = parse_args()
    start = time.time()
    counts = make_demo_data(
        args.out,
        formats=args.formats,
        num_train=args.num_train,
        num_val=args.num_val,
        seed=args.seed,
        min_size=args.min_size,
        max_size=args.max_size)
    # marks a finished set, so an interrupted run is redone by `make demo`
    with open(osp.join(args.out, '.complete'), 'w') as f:
        f.write(f'{vars(args)}\n')
    print(f'[demo] wrote {counts} images ({", ".join(args.formats)}) to '
          f'{os.path.abspath(args.out)} in {time.time() - start:.1f}s')


if __name__ == '__main__':
    main()
