"""STAND-IN of ``modules/sd_models.py`` of WebUI 1.10.1: a checkpoint registry over in-memory models.

``CheckpointInfo`` (title, name, name_for_extra, model_name, hash/shorthash, short_title), ``checkpoints_list``,
``checkpoint_aliases``, ``select_checkpoint`` (from ``opts.sd_model_checkpoint``), ``get_closet_checkpoint_match``,
and ``reload_model_weights(sd_model=None, info=None)`` which, like the WebUI, does nothing when the requested
checkpoint is already loaded and otherwise makes its model ``shared.sd_model`` and runs the ``model_loaded``
callbacks. Models are not loaded from files: the harness registers them with ``register_model``.
"""

from __future__ import annotations

import contextlib
import hashlib

from modules import shared

checkpoints_list: dict = {}
checkpoint_aliases: dict = {}
checkpoints_loaded: dict = {}
model_objects: dict = {}
"""title -> the in-memory model of that checkpoint (stand-in registry)."""


class CheckpointInfo:
    def __init__(self, filename, name=None):
        self.filename = filename
        self.name = name or filename
        self.name_for_extra = self.name.rsplit(".", 1)[0]
        self.model_name = self.name_for_extra.replace("/", "_").replace("\\", "_")
        self.hash = hashlib.sha256(self.name.encode()).hexdigest()[:8]
        self.sha256 = hashlib.sha256(self.name.encode()).hexdigest()
        self.shorthash = self.sha256[:10]
        self.title = f'{self.name} [{self.shorthash}]'
        self.short_title = f'{self.name_for_extra} [{self.shorthash}]'
        self.ids = [self.hash, self.model_name, self.title, self.name, self.name_for_extra,
                    f'{self.name} [{self.hash}]', self.shorthash, self.short_title]
        self.metadata = {}

    def register(self):
        checkpoints_list[self.title] = self
        for alias in self.ids:
            checkpoint_aliases[alias] = self

    def calculate_shorthash(self):
        return self.shorthash


def register_model(model, info: CheckpointInfo):
    """Registers an in-memory ``model`` as the checkpoint ``info`` (sets ``model.sd_checkpoint_info``)."""
    info.register()
    model.sd_checkpoint_info = info
    model.sd_model_checkpoint = info.filename
    model.sd_model_hash = info.shorthash
    model_objects[info.title] = model
    return info


def checkpoint_tiles(use_short=False):
    return [x.short_title if use_short else x.title for x in checkpoints_list.values()]


def list_models():
    pass


def get_closet_checkpoint_match(search_string):
    if not search_string:
        return None
    found = checkpoint_aliases.get(search_string)
    if found is not None:
        return found
    matches = sorted([info for info in checkpoints_list.values() if search_string in info.title],
                     key=lambda info: len(info.title))
    return matches[0] if matches else None


def select_checkpoint():
    info = checkpoint_aliases.get(shared.opts.sd_model_checkpoint)
    if info is not None:
        return info
    return next(iter(checkpoints_list.values()), None)


class SkipWritingToConfig:
    skip = False

    def __enter__(self):
        self.previous = SkipWritingToConfig.skip
        SkipWritingToConfig.skip = True
        return self

    def __exit__(self, exc_type, exc_value, exc_traceback):
        SkipWritingToConfig.skip = self.previous


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    from modules import script_callbacks

    info = info or select_checkpoint()
    current = sd_model or shared.sd_model
    if info is None or (current is not None and current.sd_checkpoint_info is info and not forced_reload):
        return current

    model = model_objects[info.title]
    shared.sd_model = model
    if not SkipWritingToConfig.skip:
        shared.opts.data["sd_model_checkpoint"] = info.title
    script_callbacks.model_loaded_callback(model)
    return model


def unload_model_weights(sd_model=None, info=None):
    pass


def apply_token_merging(sd_model, token_merging_ratio):
    pass


def apply_alpha_schedule_override(sd_model, p=None):
    pass


@contextlib.contextmanager
def model_data_lock():
    yield
