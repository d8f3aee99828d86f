from .per_sample_seed_sampler import PerSampleSeedSampler, SeededFetch
from .sample_seeds import SeededIndex, sample_seed, seeded_global_rngs

__all__ = [
    'PerSampleSeedSampler', 'SeededFetch', 'SeededIndex', 'sample_seed', 'seeded_global_rngs'
]
