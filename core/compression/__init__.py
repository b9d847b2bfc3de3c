"""Compression of a copy of a trained model: the settings (`CompressionConfig`) and `compress`."""
from core.compression.pipeline import (PRUNE_METHODS, PRUNE_SCOPES, QUANT_GRANULARITIES, QUANT_RANGES,  # noqa: F401
                                       QUANT_SCHEMES, WEIGHT_BITS, CompressionConfig, compress, structured_limit)
