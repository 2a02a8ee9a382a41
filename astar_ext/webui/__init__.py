"""The WebUI adapter: the only part of the extension that imports the WebUI's ``modules`` and gradio.

``samplers`` and ``concepts`` are host-free (they take the WebUI's functions as arguments);
``host``, ``run`` and ``script`` talk to the WebUI.
"""
