from .atomic_local_backend import AtomicLocalBackend, atomic_write
from .cpu_distributed import CPUDistributedDataParallel, setup_cpu_distributed
from .hooks import *  # noqa: F401,F403

__all__ = [
    'AtomicLocalBackend', 'atomic_write', 'CPUDistributedDataParallel',
    'setup_cpu_distributed'
]
