"""Training-side compression: the model that enters the compression pipeline is made smaller or cheaper
to train before any step of core.compression runs (the pipeline's order: core/compression/pipeline.py).

- `knowledge`: knowledge distillation (Hinton et al.): a smaller student from the teacher's soft
  targets, beside the same student trained on labels alone.
- `coreset`: data distillation by core-set selection (k-center greedy, Sener & Savarese): the same
  model trained on a small representative subset, beside a random subset of the same size.
- `compare`: the numbers the Distillation page shows (accuracy with intervals, size, agreement with
  the teacher, saliency agreement with the teacher's maps).
- `store`: their disk cache, core.training's checkpoints under other names.

A package beside core/training.py and not a step in core/compression/: these train a new model
(minutes, in a background job, cached on disk) instead of transforming a trained one on a slider
move, and what they produce is a trained model that `core.compression.compress` then takes like
any other.
"""
