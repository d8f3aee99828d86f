from .checkpoint import register_checkpoint_safe_globals
from .data_check import check_data_roots

__all__ = ['register_checkpoint_safe_globals', 'check_data_roots']
