"""The toy model as an AUTOMATIC1111 WebUI checkpoint: a safetensors file, its ldm config yaml, and the text
encoder's config and CLIP tokenizer files.

    python -m astar_ext.toy.export <webui>/models/Stable-diffusion            # writes astar-toy-v2.*

Writes into the folder:

* ``astar-toy-v2.safetensors``: the shipped weights (fp16) under the names of an SD 1.x checkpoint:
  ``model.diffusion_model.*`` (the UNet), ``first_stage_model.*`` (the VAE, ldm's ``AutoencoderKL``),
  ``cond_stage_model.transformer.text_model.*`` (the text encoder, Hugging Face's ``CLIPTextModel``);
* ``astar-toy-v2.yaml`` beside it (the WebUI reads a yaml named as the checkpoint): ldm's
  ``LatentDiffusion`` with the toy's UNet, VAE and ``scale_factor``, ``parameterization: "v"``, and
  ``FrozenCLIPEmbedder`` whose ``version`` is the absolute path of the folder below;
* ``astar-toy-v2-clip/``: ``config.json`` of the narrow ``CLIPTextModel`` (width 64, 2 layers) and the CLIP
  tokenizer's ``vocab.json`` / ``merges.txt``, made from the BPE vocabulary that CLIP's tokenizer package
  ships (``clip/bpe_simple_vocab_16e6.txt.gz``), so nothing is downloaded. The WebUI builds the text
  encoder from this config (``sd_disable_initialization`` turns ``CLIPTextModel.from_pretrained(version)``
  into a build from the config, the weights coming from the checkpoint) and the tokenizer from these files.

Needs safetensors (which the WebUI ships) and CLIP's tokenizer package (the test install).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from typing import Any

import torch

from ..tokens import clip_byte_alphabet
from .model import CLIP_VOCAB, ToyLDM, load_model, unet_params

NAME = "astar-toy-v2"


def webui_state_dict(model: ToyLDM) -> dict[str, torch.Tensor]:
    """The model's weights (fp16, contiguous) under an SD 1.x checkpoint's names."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("diffusion_model."):
            key = "model." + key
        out[key] = value.detach().half().contiguous() if value.is_floating_point() else value.detach().contiguous()
    return out


def ldm_config(model: ToyLDM, clip_dir: str) -> dict[str, Any]:
    """The ldm config (``model: ...``) that builds this model in the WebUI."""
    c = model.config
    dd = c.vae.ddconfig()
    return {"model": {
        "base_learning_rate": 1.0e-4,
        "target": "ldm.models.diffusion.ddpm.LatentDiffusion",
        "params": {
            "parameterization": "v", "linear_start": 0.00085, "linear_end": 0.0120, "num_timesteps_cond": 1,
            "log_every_t": 200, "timesteps": 1000, "first_stage_key": "jpg", "cond_stage_key": "txt",
            "image_size": c.latent_size, "channels": c.latent_channels, "cond_stage_trainable": False,
            "conditioning_key": "crossattn", "monitor": "val/loss_simple_ema", "scale_factor": c.scale_factor,
            "use_ema": False,
            "unet_config": {"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
                            "params": unet_params(c)},
            "first_stage_config": {"target": "ldm.models.autoencoder.AutoencoderKL",
                                   "params": {"embed_dim": c.vae.z_channels, "monitor": "val/rec_loss",
                                              "ddconfig": dd, "lossconfig": {"target": "torch.nn.Identity"}}},
            "cond_stage_config": {"target": "ldm.modules.encoders.modules.FrozenCLIPEmbedder",
                                  "params": {"version": os.path.abspath(clip_dir)}},
        },
    }}


def clip_text_config(model: ToyLDM) -> dict[str, Any]:
    """``config.json`` of the Hugging Face ``CLIPTextModel`` with the toy text encoder's shape."""
    c = model.config
    return {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "vocab_size": CLIP_VOCAB,
            "hidden_size": c.context_dim, "intermediate_size": 4 * c.context_dim, "projection_dim": c.context_dim,
            "num_hidden_layers": c.text_layers, "num_attention_heads": c.text_heads, "max_position_embeddings": 77,
            "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0, "dropout": 0.0,
            "initializer_range": 0.02, "initializer_factor": 1.0, "bos_token_id": 49406, "eos_token_id": 49407,
            "pad_token_id": 1, "torch_dtype": "float32"}


def tokenizer_files(bpe_path: str | None = None) -> tuple[dict[str, int], list[str]]:
    """``(vocab, merges)`` of CLIP's tokenizer from its BPE file: the 49408-token vocabulary in CLIP's order
    (bytes, bytes + ``</w>``, the merges, the two special tokens) and the 48894 merge lines."""
    if bpe_path is None:
        from clip.simple_tokenizer import default_bpe

        bpe_path = default_bpe()
    with gzip.open(bpe_path) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    symbols = list(clip_byte_alphabet().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab)}, merges


def export(out_dir: str, weights: str | None = None, name: str = NAME) -> dict[str, str]:
    """Write the checkpoint, its yaml and the text encoder folder into ``out_dir``; returns their paths."""
    from safetensors.torch import save_file

    model = load_model(weights)
    os.makedirs(out_dir, exist_ok=True)
    clip_dir = os.path.join(out_dir, f"{name}-clip")
    os.makedirs(clip_dir, exist_ok=True)
    vocab, merges = tokenizer_files()
    assert len(vocab) == CLIP_VOCAB
    with open(os.path.join(clip_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(clip_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>"}
    with open(os.path.join(clip_dir, "special_tokens_map.json"), "w") as f:
        json.dump(special, f)
    with open(os.path.join(clip_dir, "tokenizer_config.json"), "w") as f:
        json.dump({**special, "model_max_length": 77, "do_lower_case": True, "tokenizer_class": "CLIPTokenizer"}, f)
    with open(os.path.join(clip_dir, "config.json"), "w") as f:
        json.dump(clip_text_config(model), f, indent=1)
    ckpt = os.path.join(out_dir, f"{name}.safetensors")
    meta = {"astar_toy": json.dumps({"config": str(model.config), "meta": model.meta}, default=str)}
    save_file(webui_state_dict(model), ckpt, metadata=meta)
    yaml_path = os.path.join(out_dir, f"{name}.yaml")
    import yaml

    with open(yaml_path, "w") as f:
        yaml.safe_dump(ldm_config(model, clip_dir), f, sort_keys=False)
    return {"checkpoint": ckpt, "yaml": yaml_path, "clip": clip_dir}


def main(argv: list[str] | None = None) -> dict[str, str]:
    ap = argparse.ArgumentParser(description="Write the toy model as a WebUI checkpoint (safetensors + yaml).")
    ap.add_argument("out_dir", help="e.g. <webui>/models/Stable-diffusion")
    ap.add_argument("--weights", default=None, help="toy model weights (default: the shipped ones)")
    ap.add_argument("--name", default=NAME)
    a = ap.parse_args(argv)
    paths = export(a.out_dir, a.weights, a.name)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return paths


if __name__ == "__main__":
    main()
