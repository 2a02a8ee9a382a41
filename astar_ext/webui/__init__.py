"""The AUTOMATIC1111 WebUI adapter: the only part of the extension that imports that WebUI's ``modules`` and gradio.

``host`` checks the host and the model and wraps the model's tokenizer; ``script`` is the Script (UI, hooks,
infotext, XYZ axes, settings); ``route`` adds the token route. The sampling run itself is host-free and lives in
the engine (:mod:`astar_ext.passrun`, :mod:`astar_ext.passconcepts`, :mod:`astar_ext.samplers`).
"""
