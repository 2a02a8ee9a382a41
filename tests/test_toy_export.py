"""The toy model as a WebUI checkpoint: the safetensors names and shapes match what the yaml builds, the text
encoder's config matches its weights, and the tokenizer files are CLIP's."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from astar_ext.toy import export as E
from astar_ext.toy.model import load_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("webui")
    return E.export(str(out)), out


def test_checkpoint_has_an_sd1_checkpoints_names_and_the_yaml_builds_its_modules(exported):
    from ldm.modules.diffusionmodules.model import Decoder, Encoder
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    from safetensors.torch import load_file

    paths, _ = exported
    state = load_file(paths["checkpoint"])
    cfg = yaml.safe_load(open(paths["yaml"]))["model"]
    assert cfg["target"] == "ldm.models.diffusion.ddpm.LatentDiffusion"
    p = cfg["params"]
    assert p["parameterization"] == "v" and p["image_size"] == 32 and p["channels"] == 4
    assert p["cond_stage_config"]["target"] == "ldm.modules.encoders.modules.FrozenCLIPEmbedder"
    assert p["cond_stage_config"]["params"]["version"] == paths["clip"]
    assert p["scale_factor"] == load_model().config.scale_factor
    # the UNet and the VAE the WebUI would build from the yaml take these weights exactly
    dd = p["first_stage_config"]["params"]["ddconfig"]
    built = {"model.diffusion_model.": UNetModel(**p["unet_config"]["params"]),
             "first_stage_model.encoder.": Encoder(**dd), "first_stage_model.decoder.": Decoder(**dd)}
    for prefix, module in built.items():
        got = {k[len(prefix):]: tuple(v.shape) for k, v in state.items() if k.startswith(prefix)}
        assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == got, prefix
    assert p["first_stage_config"]["params"]["embed_dim"] == state["first_stage_model.post_quant_conv.weight"].shape[0]
    assert all(v.dtype == torch.float16 for v in state.values())
    keys = [k for k in state if k.startswith("cond_stage_model.")]
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in keys
    assert all(k.startswith("cond_stage_model.transformer.text_model.") for k in keys)


def test_text_encoder_config_matches_its_weights(exported):
    from safetensors.torch import load_file

    paths, _ = exported
    state = load_file(paths["checkpoint"])
    conf = json.load(open(f"{paths['clip']}/config.json"))
    pre = "cond_stage_model.transformer.text_model."
    assert state[pre + "embeddings.token_embedding.weight"].shape == (conf["vocab_size"], conf["hidden_size"])
    assert state[pre + "embeddings.position_embedding.weight"].shape[0] == conf["max_position_embeddings"] == 77
    layers = {k.split(".")[5] for k in state if k.startswith(pre + "encoder.layers.")}
    assert len(layers) == conf["num_hidden_layers"]
    assert state[pre + "encoder.layers.0.mlp.fc1.weight"].shape == (conf["intermediate_size"], conf["hidden_size"])
    assert conf["hidden_act"] == "quick_gelu" and conf["model_type"] == "clip_text_model"


def test_tokenizer_files_are_clips_vocabulary(exported):
    """vocab.json is CLIP's encoder table (as its own tokenizer builds it) and merges.txt its merge list."""
    from clip.simple_tokenizer import SimpleTokenizer

    paths, _ = exported
    vocab = json.load(open(f"{paths['clip']}/vocab.json", encoding="utf-8"))
    clip = SimpleTokenizer()
    assert vocab == clip.encoder and len(vocab) == 49408
    assert vocab["red</w>"] == 736 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    merges = open(f"{paths['clip']}/merges.txt", encoding="utf-8").read().splitlines()
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 48894
    assert {tuple(m.split()) for m in merges[1:]} == set(clip.bpe_ranks)
