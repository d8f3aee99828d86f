"""Data-parallel training on CPU processes (gloo), for tests and debugging without GPUs.

mmengine 0.10.7 assumes CUDA under a distributed launcher: ``init_dist`` calls
``torch.cuda.set_device`` and the Runner wraps the model in DDP with
``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module. :func:`setup_cpu_distributed`
initialises the gloo process group itself (the Runner then skips ``init_dist``) and selects
:class:`CPUDistributedDataParallel`, which drops ``device_ids`` for CPU modules.
"""
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

__all__ = ['CPUDistributedDataParallel', 'setup_cpu_distributed']


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps CPU modules.

    Args:
        module (nn.Module): Model to wrap.
        device_ids (list[int], optional): Ignored when the module lives on the CPU (DDP
            requires None there); passed on otherwise.
        **kwargs: Passed to ``MMDistributedDataParallel``.
    """

    def __init__(self, module, device_ids=None, **kwargs) -> None:
        if next(module.parameters()).device.type == 'cpu':
            device_ids = None
        kwargs.setdefault('broadcast_buffers', False)
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a distributed run on CPU processes when no GPU is visible.

    Args:
        cfg (Config): The run's config; ``model_wrapper_cfg`` is set unless given.
        launcher (str): The ``--launcher`` argument.

    Returns:
        bool: True if the CPU (gloo) path was set up.
    """
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel')
    return True
