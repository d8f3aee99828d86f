"""Data-parallel training on CPU processes (gloo), for tests and debugging without GPUs.

mmengine 0.10.7 assumes CUDA under a distributed launcher: ``init_dist`` calls
``torch.cuda.set_device`` and the Runner wraps the model in DDP with
``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module. :func:`setup_cpu_distributed`
initialises the gloo process group itself (the Runner then skips ``init_dist``) and selects
:class:`CPUDistributedDataParallel`, which drops ``device_ids`` for CPU modules. Under
``--launcher slurm`` it first derives torchrun's variables from Slurm's, as mmengine's
``_init_dist_slurm`` does (which calls ``torch.cuda.set_device`` and so fails on CPU nodes).
"""
import os
import subprocess

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

__all__ = ['CPUDistributedDataParallel', 'setup_cpu_distributed', 'slurm_to_torchrun_env']


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


def slurm_to_torchrun_env() -> None:
    """Set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` from Slurm.

    Same rules as mmengine's ``_init_dist_slurm``: ranks from ``SLURM_PROCID`` /
    ``SLURM_NTASKS`` / ``SLURM_LOCALID``; ``MASTER_ADDR`` and ``MASTER_PORT`` kept when set,
    else the first host of ``SLURM_NODELIST`` (``scontrol show hostnames``) and port 29500.

    Raises:
        RuntimeError: If the Slurm variables are missing (not inside ``srun``) or the master
            host cannot be found.
    """
    missing = [
        name for name in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')
        if name not in os.environ
    ]
    if missing:
        raise RuntimeError(
            f'--launcher slurm needs the variables srun sets; {", ".join(missing)} '
            'not set. Start the job with tools/slurm_train.sh (srun), or use '
            'tools/dist_train.sh (--launcher pytorch) outside Slurm.')
    if 'MASTER_ADDR' not in os.environ:
        nodelist = os.environ['SLURM_NODELIST']
        try:
            hosts = subprocess.run(['scontrol', 'show', 'hostnames', nodelist],
                                   capture_output=True, text=True,
                                   check=True).stdout.split()
        except (OSError, subprocess.CalledProcessError) as err:
            hosts, reason = [], str(err)
        else:
            reason = 'it printed no host'
        if not hosts:
            raise RuntimeError(
                f'cannot find the master host of SLURM_NODELIST={nodelist!r} with '
                f'`scontrol show hostnames` ({reason}); set MASTER_ADDR to the first '
                "node's address.")
        os.environ['MASTER_ADDR'] = hosts[0]
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a distributed run on CPU processes when no GPU is visible.

    Args:
        cfg (Config): The run's config; ``model_wrapper_cfg`` is set unless given.
        launcher (str): The ``--launcher`` argument; ``'pytorch'`` (torchrun) and
            ``'slurm'`` (srun) are set up, others are left to mmengine.

    Returns:
        bool: True if the CPU (gloo) path was set up.
    """
    if launcher not in ('pytorch', 'slurm') or torch.cuda.is_available():
        return False
    if launcher == 'slurm':
        slurm_to_torchrun_env()
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel')
    return True
