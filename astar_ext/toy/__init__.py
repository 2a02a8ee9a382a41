"""A small text-to-image model trained here, on data where concept neglect can be counted exactly.

* :mod:`.data` — scenes of one to three coloured shapes on a 32x32 grid, rendered at 256 px, captions in the
  paper's style (some naming an object that is not drawn), and their exact ground truth;
* :mod:`.detect` — a learning-free detector (colour segmentation + shape templates on the 32x32 grid);
* :mod:`.tokenizer` — captions as WebUI-style 77-token chunks of CLIP ids;
* :mod:`.vae` — the model's VAE: ldm's ``AutoencoderKL`` layout (f = 8), its weights set by hand;
* :mod:`.model` — the model: a CLIP-architecture text encoder (HF ``CLIPTextModel`` names), the VAE and the
  ldm ``UNetModel``, v-prediction on SD's noise schedule at 256 px; ``toy_model.pt`` holds its weights;
* :mod:`.train` — the seeded, resumable training script that produced them;
* :mod:`.sample` — k-diffusion sampling with CFG and the engine's :class:`~astar_ext.controller.AStarController`;
* :mod:`.export` — the same weights as a WebUI checkpoint (safetensors + ldm yaml + text encoder folder).

* :mod:`.bench` — the faithfulness benchmark (``python -m astar_ext.toy.bench``);
* :mod:`.demo` — plain vs A-STAR side by side (``python -m astar_ext.toy.demo``).
"""
