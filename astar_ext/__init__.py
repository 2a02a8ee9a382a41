"""A-STAR (Agarwal et al., ICCV 2023) for the AUTOMATIC1111 Stable Diffusion WebUI.

The modules directly in ``astar_ext`` are the host-free engine: they import neither a host's ``modules`` nor
``gradio``, nor anything of the subpackages. ``params``, ``tokens``, ``samplers`` and ``suggest`` need only the
standard library. The subpackages use the engine and are used by nothing in it:

* ``webui`` — the AUTOMATIC1111 WebUI adapter (the only code that imports that WebUI's ``modules``);
* ``toy`` — a small trained text-to-image model, its faithfulness benchmark and demo;
* ``bench`` — the speed benchmark, its stand-in host and models, the FLOP count and the tiny test model.
"""

__version__ = "0.1.0"
