"""STAND-IN of Forge's ``backend/memory_management.py``: ``load_models_gpu`` (called by ``sampling_prepare`` under
inference mode; with ``--always-cpu`` nothing moves), ``unload_all_models`` and ``soft_empty_cache``."""

loaded = []


def load_models_gpu(models, memory_required=0, hard_memory_preservation=0):
    loaded[:] = list(models)


def load_model_gpu(model):
    load_models_gpu([model])


def unload_all_models():
    loaded.clear()


def soft_empty_cache(force=False):
    pass
