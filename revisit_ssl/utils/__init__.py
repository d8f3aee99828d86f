from .checkpoint import register_checkpoint_safe_globals
from .checkpoint_layouts import (LAYOUTS, CheckpointLayout, detect_layout,
                                 extract_encoder, load_checkpoint_file)
from .data_check import check_data_roots
from .palette import voc_colour_map, voc_palette
from .progress import progress_bar

__all__ = [
    'register_checkpoint_safe_globals', 'check_data_roots', 'LAYOUTS',
    'CheckpointLayout', 'detect_layout', 'extract_encoder', 'load_checkpoint_file',
    'voc_colour_map', 'voc_palette', 'progress_bar'
]
