"""Compression of a copy of a trained model: a pipeline of registered steps (`CompressionConfig`, `compress`).

Each family is one module here that registers its step (core/compression/steps.py); importing the
modules below registers them, and pipeline.py then builds CompressionConfig from every step's fields.
A new family: one module plus its tests, and one line below.
"""
from core.compression import activations, lowrank, plan, pruning, quantization, sharing  # noqa: F401  (register their steps)
from core.compression.pipeline import CompressionConfig, compress  # noqa: F401  (after the steps)
from core.compression.pruning import PRUNE_METHODS, PRUNE_SCOPES, structured_limit  # noqa: F401
from core.compression.quantization import (QUANT_GRANULARITIES, QUANT_RANGES, QUANT_SCHEMES,  # noqa: F401
                                           WEIGHT_BITS)
from core.compression.steps import STEPS, controls, get_step, ordered, set_calibration  # noqa: F401
