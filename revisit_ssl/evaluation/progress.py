"""Progress bars for the offline tools: tqdm when installed, else mmengine's ProgressBar."""
import sys
from typing import Iterable, Iterator, Optional, TypeVar

__all__ = ['track']

T = TypeVar('T')


def track(iterable: Iterable[T],
          total: Optional[int] = None,
          desc: str = '',
          enabled: bool = True) -> Iterator[T]:
    """Yield from ``iterable`` while drawing a progress bar on stderr.

    Args:
        iterable (Iterable): What to iterate.
        total (int, optional): Number of items; ``len(iterable)`` when omitted.
        desc (str): Label in front of the bar.
        enabled (bool): False yields silently (hooks, tests). Defaults to True.
    """
    if not enabled:
        yield from iterable
        return
    total = len(iterable) if total is None else total  # type: ignore[arg-type]
    try:
        from tqdm import tqdm
    except ImportError:  # mmengine is always there
        from mmengine.utils import ProgressBar
        if desc:
            print(desc, file=sys.stderr)
        bar = ProgressBar(total, file=sys.stderr)
        for item in iterable:
            yield item
            bar.update()
        print(file=sys.stderr)
    else:
        yield from tqdm(iterable, total=total, desc=desc, file=sys.stderr)
