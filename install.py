"""Run by the WebUI at start-up (``modules/launch_utils.py`` ``run_extensions_installers``).

A-STAR needs nothing beyond what the WebUI already provides (torch, numpy, Pillow, gradio), so
there is nothing to install.
"""
