"""STAND-IN of ``modules/extra_networks.py`` of WebUI 1.10.1: prompt tags ``<name:arg1:arg2>``.

``parse_prompts`` strips the tags (data of the first prompt is returned, as in the WebUI); ``activate`` calls the
registered networks (none by default) and then ``p.scripts.after_extra_networks_activate(...)``; ``deactivate``.
"""

from __future__ import annotations

import re
from collections import defaultdict

from modules import errors

re_extra_net = re.compile(r"<(\w+):([^>]+)>")

extra_network_registry: dict = {}


class ExtraNetworkParams:
    def __init__(self, items=None):
        self.items = items or []
        self.positional = []
        self.named = {}
        for item in self.items:
            parts = item.split('=', 2) if isinstance(item, str) else [item]
            if len(parts) == 2:
                self.named[parts[0]] = parts[1]
            else:
                self.positional.append(item)

    def __eq__(self, other):
        return self.items == other.items


class ExtraNetwork:
    def __init__(self, name):
        self.name = name

    def activate(self, p, params_list):
        raise NotImplementedError

    def deactivate(self, p):
        raise NotImplementedError


def register_extra_network(extra_network):
    extra_network_registry[extra_network.name] = extra_network


def parse_prompt(prompt):
    found = defaultdict(list)

    def take(m):
        found[m.group(1)].append(ExtraNetworkParams(items=m.group(2).split(":")))
        return ""

    return re_extra_net.sub(take, prompt), found


def parse_prompts(prompts):
    stripped = []
    extra_data = None
    for prompt in prompts:
        text, data = parse_prompt(prompt)
        if extra_data is None:
            extra_data = data
        stripped.append(text)
    return stripped, extra_data


def activate(p, extra_network_data):
    for name, network in extra_network_registry.items():
        try:
            network.activate(p, (extra_network_data or {}).get(name, []))
        except Exception as e:
            errors.display(e, f"activating extra network {name}")

    if p.scripts is not None:
        p.scripts.after_extra_networks_activate(p, batch_number=p.iteration, prompts=p.prompts, seeds=p.seeds,
                                                subseeds=p.subseeds, extra_network_data=extra_network_data)


def deactivate(p, extra_network_data):
    for name, network in extra_network_registry.items():
        try:
            network.deactivate(p)
        except Exception as e:
            errors.display(e, f"deactivating extra network {name}")
