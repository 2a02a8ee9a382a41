"""A-STAR (Agarwal et al., ICCV 2023) for the AUTOMATIC1111 Stable Diffusion WebUI.

The package outside ``astar_ext.webui`` is the host-free engine: it imports neither the WebUI's
``modules`` nor ``gradio``. ``params`` and ``tokens`` need only the standard library.
"""

__version__ = "0.1.0"
