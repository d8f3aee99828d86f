"""MoCo-v2's and A+'s photometric view augmentations on a batch, with per-sample parameters.

The batched counterparts of the CPU path's ``FastColorJitter``, ``FastRandomGrayscale``,
``FastGaussianBlur``, ``FastRandomFlip`` and ``FastAutoAugment``
(:mod:`revisit_ssl.datasets.transforms.fast_view_transforms`), built from the same config
dicts (:func:`build_batched_view_ops`), so one list in the config drives either path. Each op
works on a float32 ``(N, 3, H, W)`` RGB batch holding integer grey levels in ``[0, 255]``
(rounded after every op, as the uint8 CPU path), draws one set of parameters per sample from
torch's global generator on the batch's device (seeded by ``torch.manual_seed``: by
``StepSeedHook`` before every training step, from ``randomness.seed``, the step and the rank),
and uses ``torchvision.transforms.v2.functional`` where an op
takes batch-wide parameters (grey conversion, AutoAugment's operations at their fixed
magnitudes) and torchvision's formulas with per-sample factors broadcast over the batch
otherwise (colour jitter, blur).

Paper: `Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
<https://arxiv.org/abs/2106.05967>`_.
"""
import math
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as torch_F
from torchvision.transforms import AutoAugment as TorchvisionAutoAugment
from torchvision.transforms import AutoAugmentPolicy, InterpolationMode
from torchvision.transforms.v2 import functional as F
# torchvision's own RGB <-> HSV of adjust_hue (torchvision is pinned in requirements/torch.txt);
# public adjust_hue takes one hue factor for the whole batch.
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

from revisit_ssl.datasets.transforms.fast_auto_augment import (AUTO_AUGMENT_OPS,
                                                               FastAutoAugment)
from revisit_ssl.datasets.transforms.fast_view_transforms import (FastColorJitter,
                                                                  FastGaussianBlur)

__all__ = ['BatchedColorJitter', 'BatchedRandomGrayscale', 'BatchedGaussianBlur',
           'BatchedRandomFlip', 'BatchedAutoAugment', 'build_batched_view_ops',
           'apply_batched_ops']

Params = Dict[str, torch.Tensor]


def _check_prob(prob: float) -> float:
    if not 0. <= prob <= 1.:
        raise ValueError(f'prob must be in [0, 1], got {prob}.')
    return float(prob)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """torchvision's grey level (ITU-R 601-2 luma) of an RGB batch, ``(N, 1, H, W)``, rounded."""
    return F.rgb_to_grayscale(x, num_output_channels=1).round()


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend`` with one factor per sample, truncated to grey levels.

    PIL's ``Image.blend`` (the CPU path, torchvision on PIL images) and torchvision on uint8
    tensors both truncate; rounding instead would brighten every jittered view by ~0.5 grey
    levels per step. The small epsilon keeps exact integers from dropping by one.
    """
    return (factor * x + (1. - factor) * other).add_(1e-3).clamp_(0., 255.).floor_()


class BatchedColorJitter:
    """``RandomApply([ColorJitter(b, c, s, h)], prob)`` with parameters drawn per sample.

    Per sample, as torchvision: applied with probability ``prob``; a random order of the four
    steps; factors uniform in their ranges (the same ranges as :class:`FastColorJitter`).

    Args:
        prob (float): Probability of jittering a sample. Defaults to 1.
        brightness, contrast, saturation, hue: As :class:`FastColorJitter`.
    """

    def __init__(self, prob: float = 1., brightness=0., contrast=0., saturation=0.,
                 hue=0.) -> None:
        self.prob = _check_prob(prob)
        ranges = FastColorJitter(brightness, contrast, saturation, hue)  # validates
        self.ranges = (ranges.brightness, ranges.contrast, ranges.saturation, ranges.hue)

    def sample(self, num: int, device: torch.device) -> Params:
        """Draw per-sample parameters: ``applied`` (N,), ``order`` (N, 4), ``factors`` (N, 4)."""
        applied = torch.rand(num, device=device) < self.prob
        order = torch.rand(num, 4, device=device).argsort(dim=1)
        low = torch.tensor([r[0] for r in self.ranges], device=device)
        high = torch.tensor([r[1] for r in self.ranges], device=device)
        factors = low + (high - low) * torch.rand(num, 4, device=device)
        return dict(applied=applied, order=order, factors=factors)

    @staticmethod
    def _step(step: int, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        factor = factor.view(-1, 1, 1, 1)
        if step == 0:  # brightness: blend with black
            return _blend(x, torch.zeros_like(x), factor)
        if step == 1:  # contrast: blend with the mean grey level, rounded as PIL's int(m + .5)
            mean = _grey(x).mean(dim=(-3, -2, -1), keepdim=True).add_(0.5).floor_()
            return _blend(x, mean, factor)
        if step == 2:  # saturation: blend with the grey image
            return _blend(x, _grey(x), factor)
        # hue: torchvision's PIL path (the release, and the CPU path) rotates PIL's 8-bit HSV:
        # H = int(h * 255), S = int(s * 255), H += int(shift * 255) with uint8 wrap-around.
        # The truncations shift hues by -0.5 / 255 turns on average; kept so that both paths
        # draw the same distribution.
        hsv = _rgb_to_hsv(x / 255.)
        shift = torch.trunc(factor.view(-1, 1, 1) * 255.)
        hue = torch.remainder(torch.floor(hsv[:, 0] * 255.) + shift, 256.) / 255.
        saturation = torch.floor(hsv[:, 1] * 255.) / 255.
        hsv = torch.stack((hue, saturation, hsv[:, 2]), dim=1)
        return (_hsv_to_rgb(hsv) * 255.).clamp_(0., 255.).round_()

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Jitter ``x`` with ``params`` from :meth:`sample`."""
        x = x.clone()
        identity = (1., 1., 1., 0.)
        for slot in range(4):
            for step in range(4):
                if self.ranges[step] == (identity[step], identity[step]):
                    continue  # torchvision skips a step whose range is the identity
                index = (params['applied'] & (params['order'][:, slot] == step)).nonzero()
                index = index.squeeze(1)
                if index.numel():
                    x[index] = self._step(step, x[index], params['factors'][index, step])
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], x.device))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob}, ranges={self.ranges})'


class _MaskedOp:
    """An op applied to each sample with probability ``prob``."""

    def __init__(self, prob: float) -> None:
        self.prob = _check_prob(prob)

    def sample(self, num: int, device: torch.device) -> Params:
        return dict(applied=torch.rand(num, device=device) < self.prob)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], x.device))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'


class BatchedRandomGrayscale(_MaskedOp):
    """``RandomGrayscale(prob)`` per sample: torchvision's grey level in three channels."""

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        mask = params['applied'].view(-1, 1, 1, 1)
        return torch.where(mask, _grey(x).expand_as(x), x)


class BatchedRandomFlip(_MaskedOp):
    """``RandomHorizontalFlip(prob)`` per sample."""

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return torch.where(params['applied'].view(-1, 1, 1, 1), F.horizontal_flip(x), x)


class BatchedGaussianBlur(_MaskedOp):
    """MoCo-v2's blur per sample: with probability ``prob``, sigma ~ U(sigma_min, sigma_max).

    One separable Gaussian kernel per blurred sample (radius ``ceil(3 * sigma_max)``), applied
    as a grouped convolution, edges replicated as PIL does. The CPU path computes PIL's
    three-box approximation of the same Gaussian.

    Args:
        sigma (Sequence[float]): ``(min, max)`` in pixels, as :class:`FastGaussianBlur`.
        prob (float): Probability of blurring. Defaults to 0.5.
    """

    def __init__(self, sigma: Sequence[float] = (0.1, 2.0), prob: float = 0.5) -> None:
        super().__init__(prob)
        self.sigma = FastGaussianBlur(sigma, prob).sigma  # validates
        self.radius = int(math.ceil(3 * self.sigma[1]))

    def sample(self, num: int, device: torch.device) -> Params:
        params = super().sample(num, device)
        low, high = self.sigma
        params['sigma'] = low + (high - low) * torch.rand(num, device=device)
        return params

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        index = params['applied'].nonzero().squeeze(1)
        if not index.numel():
            return x
        x = x.clone()
        sub = x[index]
        num, channels, height, width = sub.shape
        offsets = torch.arange(-self.radius, self.radius + 1, device=x.device, dtype=x.dtype)
        sigma = params['sigma'][index].to(x.dtype).view(-1, 1)
        kernel = torch.exp(-0.5 * (offsets / sigma)**2)
        kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(channels, 0)
        r = self.radius
        planes = sub.reshape(1, num * channels, height, width)
        planes = torch_F.pad(planes, (r, r, 0, 0), mode='replicate')
        planes = torch_F.conv2d(planes, kernel.view(-1, 1, 1, 2 * r + 1), groups=num * channels)
        planes = torch_F.pad(planes, (0, 0, r, r), mode='replicate')
        planes = torch_F.conv2d(planes, kernel.view(-1, 1, 2 * r + 1, 1), groups=num * channels)
        x[index] = planes.view(num, channels, height, width).clamp_(0., 255.).round_()
        return x

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(sigma={self.sigma}, prob={self.prob})'


def _auto_augment_op(name: str, img: torch.Tensor, magnitude: float) -> torch.Tensor:
    """torchvision ``AutoAugment``'s ``_apply_op`` on a uint8 batch (fill black, nearest)."""
    nearest = InterpolationMode.NEAREST
    if name == 'ShearX':
        return F.affine(img, angle=0.0, translate=[0, 0], scale=1.0,
                        shear=[math.degrees(math.atan(magnitude)), 0.0], interpolation=nearest,
                        center=[0, 0])
    if name == 'Rotate':
        return F.rotate(img, magnitude, interpolation=nearest)
    if name == 'Color':
        return F.adjust_saturation(img, 1.0 + magnitude)
    if name == 'Contrast':
        return F.adjust_contrast(img, 1.0 + magnitude)
    if name == 'Sharpness':
        return F.adjust_sharpness(img, 1.0 + magnitude)
    if name == 'Posterize':
        return F.posterize(img, int(magnitude))
    if name == 'Solarize':
        return F.solarize(img, magnitude)
    if name == 'AutoContrast':
        return F.autocontrast(img)
    if name == 'Equalize':
        return F.equalize(img)
    if name == 'Invert':
        return F.invert(img)
    raise NotImplementedError(f'no batched AutoAugment operation {name!r}')


class BatchedAutoAugment:
    """torchvision's ``AutoAugment(IMAGENET)`` with the sub-policy drawn per sample.

    Per sample, as torchvision (and :class:`FastAutoAugment`): one of the 25 sub-policies
    uniformly, each of its two operations with its probability, signed magnitudes negated
    with probability 1/2. The batch is processed one sub-policy (and sign) at a time, each
    operation on the subset of samples that drew it.

    Args:
        policy (str): Only ``'imagenet'`` (the paper's A+).
    """

    def __init__(self, policy: str = 'imagenet') -> None:
        FastAutoAugment(policy)  # validates
        self.policy = policy
        self.policies = TorchvisionAutoAugment(AutoAugmentPolicy.IMAGENET).policies

    def sample(self, num: int, device: torch.device) -> Params:
        return dict(
            sub_policy=torch.randint(len(self.policies), (num, ), device=device),
            probs=torch.rand(num, 2, device=device),
            signs=torch.randint(2, (num, 2), device=device))

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        x = x.clone()
        for policy_index, sub_policy in enumerate(self.policies):
            members = params['sub_policy'] == policy_index
            for i, (name, prob, magnitude_id) in enumerate(sub_policy):
                chosen = members & (params['probs'][:, i] <= prob)
                magnitude = FastAutoAugment.magnitude(name, magnitude_id)
                signed = AUTO_AUGMENT_OPS[name][2]
                groups = ((chosen & (params['signs'][:, i] == 0), -magnitude),
                          (chosen & (params['signs'][:, i] == 1), magnitude)) if signed else \
                    ((chosen, magnitude), )
                for mask, value in groups:
                    index = mask.nonzero().squeeze(1)
                    if index.numel():
                        img = x[index].to(torch.uint8)
                        x[index] = _auto_augment_op(name, img, value).to(x.dtype)
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], x.device))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(policy={self.policy!r})'


_SIMPLE = dict(FastRandomGrayscale=BatchedRandomGrayscale, FastGaussianBlur=BatchedGaussianBlur,
               FastRandomFlip=BatchedRandomFlip, FastAutoAugment=BatchedAutoAugment)


def build_batched_view_ops(transforms: Sequence[dict]) -> List:
    """Batched ops from a config list of the CPU path's view transforms.

    Accepts ``FastColorJitter`` (alone or as the single child of ``RandomApply``),
    ``FastRandomGrayscale``, ``FastGaussianBlur``, ``FastRandomFlip`` and ``FastAutoAugment``
    dicts with their own arguments, e.g. the ``view_transforms`` and
    ``auto_augment_transforms`` lists of ``configs/_base_/datasets/coco_knn_moco.py``.

    Args:
        transforms (Sequence[dict]): Transform configs.

    Returns:
        list: Batched ops, applied in this order.
    """
    supported = ['RandomApply(FastColorJitter)', 'FastColorJitter'] + list(_SIMPLE)
    ops = []
    for cfg in transforms:
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise TypeError(f'view transforms must be config dicts with a type, got {cfg!r}.')
        args = dict(cfg)
        kind = args.pop('type')
        prob = 1.
        if kind == 'RandomApply':
            children = args.get('transforms')
            children = [children] if isinstance(children, dict) else list(children or [])
            if len(children) != 1 or children[0].get('type') != 'FastColorJitter':
                raise ValueError(f'RandomApply with {children!r}: only RandomApply around one '
                                 'FastColorJitter runs on the device.')
            prob = args.get('prob', 0.5)  # mmcv's RandomApply default
            args = dict(children[0])
            kind = args.pop('type')
        if kind == 'FastColorJitter':
            ops.append(BatchedColorJitter(prob=prob, **args))
        elif kind in _SIMPLE:
            ops.append(_SIMPLE[kind](**args))
        else:
            raise ValueError(f'{kind} has no batched device version (supported: '
                             f'{", ".join(supported)}); keep it in the CPU pipeline instead.')
    return ops


def apply_batched_ops(ops: Sequence, x: torch.Tensor) -> torch.Tensor:
    """Apply ``ops`` in order to a float32 RGB batch (no-op on an empty batch)."""
    if x.shape[0] == 0:
        return x
    for op in ops:
        x = op(x)
    return x
