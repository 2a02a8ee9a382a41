"""STAND-IN of the model object the WebUI 1.10.1 keeps in ``shared.sd_model``, built around :class:`TinyLDM`.

Imitates ``ldm.models.diffusion.ddpm.LatentDiffusion`` as the WebUI uses it (after ``sd_models.load_model`` and
``sd_hijack``): ``.model`` is a ``DiffusionWrapper``-like module (``conditioning_key = "crossattn"``) holding the
UNet as ``.model.diffusion_model`` (module names ``model.diffusion_model.input_blocks...`` as in the WebUI),
``apply_model(x_noisy, t, cond)``, ``alphas_cumprod``, ``parameterization``, ``cond_stage_key = "txt"``,
``cond_stage_model`` (a stand-in of ``sd_hijack_clip.FrozenCLIPEmbedderWithCustomWords``),
``get_learned_conditioning(texts)``, ``cond_stage_model_empty_prompt``, ``first_stage_model`` with a deterministic
"VAE" (``decode_first_stage``/``encode_first_stage``/``get_first_stage_encoding``), ``ema_scope()``, the model-type
flags ``is_sd1``/``is_sd2``/``is_sdxl``/``is_sd3``/``is_ssd``/``is_sdxl_inpaint`` and ``lowvram``.

Variants: ``"sd1"``; ``"sd2"`` (``is_sd2``, ``parameterization "v"`` like the 768-v models, the text wrapper pads
with id 0 after the first end token like OpenCLIP); ``"sd2-base"`` (the same, ``parameterization "eps"`` like the
512-base models); ``"sdxl"`` around a tiny model with the SDXL block layout (``astar_ext.bench.tiny.sdxl_config``):
``is_sdxl``, a ``conditioner`` (sgm's ``GeneralConditioner`` as the WebUI patches it: no ``tokenize_line``) whose two
text wrappers in ``.embedders`` (CLIP-L-like, padding with the end id; bigG-like, padding with 0 and giving the pooled
output) are concatenated channel-wise into ``crossattn``, and ``vector`` = pooled output + embeddings of the image
size (from the ``SdConditioning``'s ``width``/``height``, 1024 when absent, as the WebUI); ``apply_model`` takes
sgm's dict and the wrapper passes ``vector`` to the UNet as ``y`` (sgm's ``OpenAIWrapper``); ``"ssd"``: the same
with ``is_ssd`` around a tiny SDXL model with SSD-1B's blocks deleted (``astar_ext.bench.tiny.ssd_layout``).
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from tests.standin.prompt import StandinClipWrapper


def _opts():
    from modules import shared

    return shared.opts


class _Tokenizer:
    """Stand-in of the HF ``CLIPTokenizer`` at ``cond_stage_model.wrapped.tokenizer`` (decode helpers only)."""

    def __init__(self, bpe):
        self.bpe = bpe

    def get_vocab(self):
        return dict(self.bpe.encoder)

    def convert_ids_to_tokens(self, ids):
        """As HF's: one id gives one token, a list of ids a list."""
        if isinstance(ids, int):
            return self.bpe.decoder[ids]
        return [self.bpe.decoder[i] for i in ids]


class StandinTextWrapper(nn.Module):
    """Stand-in of ``FrozenCLIPEmbedderWithCustomWords``: WebUI tokenization (reading ``opts.emphasis`` and
    ``opts.comma_padding_backtrack`` at call time) and ``forward(texts)`` -> ``[B, 77*k, C]``.

    Each 77-token chunk is encoded separately by the tiny text encoder and the chunks are concatenated along the
    token axis; prompts of one call with fewer chunks are padded with empty chunks (SOT + EOT...), as the WebUI's
    ``TextConditionalModel.forward`` does; emphasis multiplies the chunk output and restores its mean ("Original").
    Textual-inversion placeholders (id 0) are encoded as the id-0 token (the WebUI writes the embedding vectors).
    """

    chunk_length = 75

    def __init__(self, text_encoder: nn.Module, *, id_pad: int | None = None, channels: slice | None = None,
                 embeddings=None, return_pooled: bool = False):
        super().__init__()
        self.return_pooled = return_pooled
        self.pooled = None
        self.text_encoder = text_encoder
        self.clip = StandinClipWrapper(embeddings=embeddings)
        self.id_start = self.clip.id_start
        self.id_end = self.clip.id_end
        self.id_pad = self.id_end if id_pad is None else id_pad
        self.comma_token = self.clip.comma_token
        self.channels = channels
        self.wrapped = nn.Module()
        self.wrapped.tokenizer = _Tokenizer(self.clip.bpe)
        self.hijack = None
        self.fixes = None

    def tokenize(self, texts):
        return self.clip.tokenize(texts)

    def decode(self, token_id):
        return self.clip.decode(token_id)

    def tokenize_line(self, line):
        opts = _opts()
        self.clip.emphasis = opts.emphasis != "None"
        self.clip.comma_padding_backtrack = opts.comma_padding_backtrack
        return self.clip.tokenize_line(line)

    def empty_chunk(self):
        from tests.standin.prompt import PromptChunk

        chunk = PromptChunk()
        chunk.tokens = [self.id_start] + [self.id_end] * (self.chunk_length + 1)
        chunk.multipliers = [1.0] * (self.chunk_length + 2)
        return chunk

    def get_target_prompt_token_count(self, token_count):
        return math.ceil(max(token_count, 1) / self.chunk_length) * self.chunk_length

    def process_texts(self, texts):
        cache, batch_chunks, token_count = {}, [], 0
        for line in texts:
            if line not in cache:
                chunks, count = self.tokenize_line(line)
                token_count = max(count, token_count)
                cache[line] = chunks
            batch_chunks.append(cache[line])
        return batch_chunks, token_count

    def encode_with_transformers(self, tokens):
        z = self.text_encoder(tokens)
        return z if self.channels is None else z[..., self.channels]

    def process_tokens(self, batch_tokens, batch_multipliers):
        tokens = torch.asarray(batch_tokens).to(self.text_encoder.token.weight.device)
        if self.id_end != self.id_pad:
            for row, ids in enumerate(batch_tokens):
                tokens[row, ids.index(self.id_end) + 1:] = self.id_pad
        z = self.encode_with_transformers(tokens)
        if self.return_pooled:
            from astar_ext.bench.tiny import pooled_output

            self.pooled = pooled_output(z, tokens, self.id_end)

        mode = _opts().emphasis
        if mode in ("Original", "No norm"):
            multipliers = torch.asarray(batch_multipliers, dtype=z.dtype, device=z.device)
            mean = z.mean()
            z = z * multipliers[..., None]
            if mode == "Original":
                z = z * (mean / z.mean())
        return z

    def forward(self, texts):
        batch_chunks, _ = self.process_texts(texts)
        chunk_count = max(len(chunks) for chunks in batch_chunks)
        zs, pooled = [], None
        for i in range(chunk_count):
            batch_chunk = [chunks[i] if i < len(chunks) else self.empty_chunk() for chunks in batch_chunks]
            self.fixes = [c.fixes for c in batch_chunk]
            zs.append(self.process_tokens([c.tokens for c in batch_chunk], [c.multipliers for c in batch_chunk]))
            if i == 0:
                pooled = self.pooled
        self.fixes = None
        if self.return_pooled:
            return torch.hstack(zs), pooled  # the WebUI keeps the first chunk's pooled output
        return torch.hstack(zs)


class StandinConditioner(nn.Module):
    """Stand-in of sgm's ``GeneralConditioner`` as the WebUI patches it (``tokenize``, ``process_texts``,
    ``get_target_prompt_token_count`` delegate to the first embedder; no ``tokenize_line``)."""

    def __init__(self, embedders):
        super().__init__()
        self.embedders = nn.ModuleList(embedders)

    def tokenize(self, texts):
        return self.embedders[0].tokenize(texts)

    def process_texts(self, texts):
        return self.embedders[0].process_texts(texts)

    def get_target_prompt_token_count(self, token_count):
        return self.embedders[0].get_target_prompt_token_count(token_count)

    def forward(self, texts, force_zero_embeddings=(), size_embedding=8):
        from astar_ext.bench.tiny import sdxl_vector

        outputs = [e(texts) for e in self.embedders]
        crossattn = torch.cat([o[0] if isinstance(o, tuple) else o for o in outputs], dim=2)
        pooled = next(o[1] for o in outputs if isinstance(o, tuple))
        if "txt" in force_zero_embeddings:
            crossattn, pooled = torch.zeros_like(crossattn), torch.zeros_like(pooled)
        height = getattr(texts, "height", None) or 1024
        width = getattr(texts, "width", None) or 1024
        return {"crossattn": crossattn, "vector": sdxl_vector(pooled, height, width, size_embedding)}


class DiffusionWrapper(nn.Module):
    """``ldm``'s ``DiffusionWrapper`` for ``conditioning_key="crossattn"`` (``sgm`` style dict for SDXL)."""

    def __init__(self, diffusion_model, sgm_style=False):
        super().__init__()
        self.diffusion_model = diffusion_model
        self.conditioning_key = "crossattn"
        self.sgm_style = sgm_style

    def forward(self, x, t, c_concat: list = None, c_crossattn: list = None, c_adm=None, **sgm_cond):
        if self.sgm_style:  # sgm's OpenAIWrapper: crossattn -> context, vector -> y
            return self.diffusion_model(x, t, context=sgm_cond["crossattn"], y=sgm_cond.get("vector"))
        return self.diffusion_model(x, t, context=torch.cat(c_crossattn, 1))


class StandinFirstStage(nn.Module):
    """A deterministic stand-in VAE: latent ``[B, 4, h, w]`` <-> RGB ``[B, 3, 8h, 8w]`` in ``[-1, 1]``."""

    def __init__(self):
        super().__init__()
        mix = torch.tensor([[0.35, 0.25, -0.2, -0.15], [0.3, 0.3, 0.1, -0.3], [0.25, 0.1, 0.3, -0.35]])
        self.register_buffer("mix", mix, persistent=False)
        self.register_buffer("unmix", torch.linalg.pinv(mix), persistent=False)

    @property
    def dtype(self):
        return torch.float32

    def decode(self, z):
        rgb = torch.tanh(torch.einsum("cl,blhw->bchw", self.mix.to(z.dtype), z))
        return nn.functional.interpolate(rgb, scale_factor=8, mode="nearest")

    def encode(self, image):
        rgb = nn.functional.avg_pool2d(image, 8).clamp(-0.999, 0.999)
        return torch.einsum("lc,bchw->blhw", self.unmix.to(image.dtype), torch.atanh(rgb))


class StandinLatentDiffusion(nn.Module):
    def __init__(self, tiny, variant: str = "sd1", embeddings=None):
        super().__init__()
        if variant not in ("sd1", "sd2", "sd2-base", "sdxl", "ssd"):
            raise ValueError(f"unknown variant {variant!r}")
        xl = variant in ("sdxl", "ssd")
        if xl != bool(getattr(tiny, "is_sdxl_layout", False)):
            want = 'with' if xl else 'without'
            raise ValueError(f"the {variant!r} variant needs a tiny model {want} the SDXL layout")
        self.variant = variant
        self.model = DiffusionWrapper(tiny.diffusion_model, sgm_style=xl)
        self.first_stage_model = StandinFirstStage()
        self.register_buffer("alphas_cumprod", tiny.alphas_cumprod.clone(), persistent=False)
        self.tiny_config = tiny.config

        self.is_sd1 = variant == "sd1"
        self.is_sd2 = variant in ("sd2", "sd2-base")
        self.is_sdxl = xl
        self.is_sd3 = False
        self.is_ssd = variant == "ssd"
        self.is_sdxl_inpaint = False
        self.lowvram = False
        self.parameterization = "v" if variant == "sd2" else "eps"
        self.cond_stage_key = "txt"
        self.scale_factor = 1.0

        if xl:
            self.conditioner = StandinConditioner([
                StandinTextWrapper(tiny.text, embeddings=embeddings),
                StandinTextWrapper(tiny.text2, id_pad=0, embeddings=embeddings, return_pooled=True),
            ])
            self.cond_stage_model = self.conditioner
        else:
            self.cond_stage_model = StandinTextWrapper(tiny.text, id_pad=0 if self.is_sd2 else None,
                                                       embeddings=embeddings)

        self.sd_checkpoint_info = None
        self.sd_model_checkpoint = None
        self.sd_model_hash = None
        self._empty_prompt = None

    @property
    def device(self):
        return self.alphas_cumprod.device

    @property
    def dtype(self):
        return torch.float32

    @contextlib.contextmanager
    def ema_scope(self, context=None):
        yield

    def apply_model(self, x_noisy, t, cond, return_ids=False):
        if not isinstance(cond, dict):
            cond = {"c_crossattn": cond if isinstance(cond, list) else [cond]}
        if self.is_sdxl:
            return self.model(x_noisy, t, **{k: v for k, v in cond.items() if k != "c_concat"})
        return self.model(x_noisy, t, **cond)

    def get_learned_conditioning(self, c):
        if self.is_sdxl:
            force_zero = getattr(c, "is_negative_prompt", False) and all(x == "" for x in c)
            return self.conditioner(c, force_zero_embeddings=["txt"] if force_zero else [])
        return self.cond_stage_model(c)

    @property
    def cond_stage_model_empty_prompt(self):
        if self._empty_prompt is None:
            with torch.no_grad():
                cond = self.get_learned_conditioning([""])
            self._empty_prompt = cond["crossattn"] if isinstance(cond, dict) else cond
        return self._empty_prompt

    def decode_first_stage(self, z):
        return self.first_stage_model.decode(z / self.scale_factor)

    def encode_first_stage(self, x):
        return self.first_stage_model.encode(x)

    def get_first_stage_encoding(self, encoder_posterior):
        return self.scale_factor * encoder_posterior
