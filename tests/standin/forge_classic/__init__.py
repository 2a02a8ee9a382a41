"""STAND-IN of the Forge Classic interfaces that A-STAR uses (``Haoming02/sd-webui-forge-classic``, branch
``classic``, ``1f95d717``), for tests only (MIT).

Forge Classic is AUTOMATIC1111's WebUI with Forge's ``ldm_patched`` backend under it: the loaded model is the
WebUI's ldm/sgm model object (so the WebUI stand-in's model, text wrappers and sampler lists serve) with
``forge_objects`` added and its ``model.diffusion_model`` replaced by Forge's UNet; the CFG denoiser runs the
UNet through ``modules_forge/forge_sampler.py`` ``forge_sample`` and ``ldm_patched``'s ``sampling_function``;
the batch loop runs under ``torch.inference_mode()``. This stand-in lays those differences over the WebUI
stand-in (``modules/`` here holds only the changed modules, on top of the Forge main stand-in's where Classic
and Forge main agree), with ``ldm_patched/`` and ``modules_forge/`` imitating what the CFG denoiser and A-STAR's
Classic adapter use. Nothing here is Forge code: it is written from reading Forge Classic's source (each
module's docstring names the file) to reproduce its signatures, call order and inference mode.
"""
