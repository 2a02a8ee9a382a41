"""STAND-IN of ``modules/sd_samplers.py`` of WebUI 1.10.1: the sampler registry.

``all_samplers`` (k-diffusion, timestep and LCM samplers in the WebUI's order), ``all_samplers_map``,
``find_sampler_config`` (``None`` -> the first sampler), ``create_sampler(name, model)`` (asserts a known name,
refuses ``no_sdxl`` samplers on SDXL, sets ``sampler.config``), ``samplers_map`` with lower-cased names and aliases,
``get_sampler_and_scheduler`` (splits old names such as "DPM++ 2M Karras"), ``fix_p_invalid_sampler_and_scheduler``.
"""

from __future__ import annotations

import functools
import logging

from modules import (
    sd_samplers_common,
    sd_samplers_kdiffusion,
    sd_samplers_lcm,
    sd_samplers_timesteps,
    sd_schedulers,
    shared,
)

samples_to_image_grid = sd_samplers_common.samples_to_image_grid
sample_to_image = sd_samplers_common.sample_to_image

all_samplers = [
    *sd_samplers_kdiffusion.samplers_data_k_diffusion,
    *sd_samplers_timesteps.samplers_data_timesteps,
    *sd_samplers_lcm.samplers_data_lcm,
]
all_samplers_map = {x.name: x for x in all_samplers}

samplers: list[sd_samplers_common.SamplerData] = []
samplers_for_img2img: list[sd_samplers_common.SamplerData] = []
samplers_map = {}
samplers_hidden = {}


def find_sampler_config(name):
    return all_samplers_map.get(name, None) if name is not None else all_samplers[0]


def create_sampler(name, model):
    config = find_sampler_config(name)
    assert config is not None, f'bad sampler name: {name}'
    if model.is_sdxl and config.options.get("no_sdxl", False):
        raise Exception(f"Sampler {config.name} is not supported for SDXL")
    sampler = config.constructor(model)
    sampler.config = config
    return sampler


def set_samplers():
    global samplers, samplers_for_img2img, samplers_hidden
    samplers_hidden = set(shared.opts.hide_samplers)
    samplers = all_samplers
    samplers_for_img2img = all_samplers
    samplers_map.clear()
    for sampler in all_samplers:
        samplers_map[sampler.name.lower()] = sampler.name
        for alias in sampler.aliases:
            samplers_map[alias.lower()] = sampler.name


def visible_sampler_names():
    return [x.name for x in samplers if x.name not in samplers_hidden]


def visible_samplers():
    return [x for x in samplers if x.name not in samplers_hidden]


@functools.cache
def get_sampler_and_scheduler(sampler_name, scheduler_name, *, convert_automatic=True):
    default = samplers[0]
    scheduler = sd_schedulers.schedulers_map.get(scheduler_name, sd_schedulers.schedulers[0])
    name = sampler_name or default.name

    for candidate in sd_schedulers.schedulers:
        for suffix in [candidate.label, candidate.name, *(candidate.aliases or [])]:
            if name.endswith(" " + suffix):
                scheduler = candidate
                name = name[:-(len(suffix) + 1)]
                break

    sampler = all_samplers_map.get(name, default)
    if convert_automatic and sampler.options.get('scheduler', None) == scheduler.name:
        scheduler = sd_schedulers.schedulers[0]
    return sampler.name, scheduler.label


def get_sampler_from_infotext(d: dict):
    return get_sampler_and_scheduler(d.get("Sampler"), d.get("Schedule type"))[0]


def get_scheduler_from_infotext(d: dict):
    return get_sampler_and_scheduler(d.get("Sampler"), d.get("Schedule type"))[1]


def fix_p_invalid_sampler_and_scheduler(p):
    old = p.sampler_name, p.scheduler
    p.sampler_name, p.scheduler = get_sampler_and_scheduler(p.sampler_name, p.scheduler, convert_automatic=False)
    if (p.sampler_name, p.scheduler) != old:
        logging.warning(f'Sampler Scheduler autocorrection: "{old[0]}" -> "{p.sampler_name}", "{old[1]}" -> '
                        f'"{p.scheduler}"')


set_samplers()
