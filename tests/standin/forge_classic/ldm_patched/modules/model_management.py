"""STAND-IN of Forge Classic's ``ldm_patched/modules/model_management.py``: ``load_models_gpu`` (called by
``sampling_prepare`` under inference mode; with ``--always-cpu`` nothing moves)."""

loaded = []


def load_models_gpu(models, memory_required=0):
    loaded[:] = list(models)
