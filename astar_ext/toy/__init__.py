"""A small text-to-image model trained here, on data where concept neglect can be counted exactly.

* :mod:`.data` — 32x32 scenes of one to three coloured shapes, captions in the paper's style, and their
  exact ground truth;
* :mod:`.detect` — a learning-free detector (colour segmentation + shape templates);
* :mod:`.tokenizer` — captions as WebUI-style 77-token chunks of CLIP ids;
* :mod:`.model` — the model: a CLIP-architecture text encoder and the ldm ``UNetModel``, v-prediction on
  SD's noise schedule, in pixel space folded 4x4 into an 8x8 "latent"; ``toy_model.pt`` holds its weights;
* :mod:`.train` — the seeded, resumable training script that produced them;
* :mod:`.sample` — k-diffusion sampling with CFG and the engine's :class:`~astar_ext.controller.AStarController`.

* :mod:`.bench` — the faithfulness benchmark (``python -m astar_ext.toy.bench``);
* :mod:`.demo` — plain vs A-STAR side by side (``python -m astar_ext.toy.demo``).
"""
