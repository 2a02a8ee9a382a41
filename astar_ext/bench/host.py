"""A minimal host for the benchmark: the WebUI 1.10.1 sampling path without the WebUI.

:mod:`astar_ext.bench.speed` drives the real k-diffusion sampler functions and the real
:class:`~astar_ext.passrun.PassRun` (its ``functools.wraps`` wrapper of ``sampler.func`` and its
forward pre-hook on the CFG denoiser) through the small imitations below. Nothing here imports the
WebUI or the tests.

* :class:`CFGDenoiser` — the main path of ``modules/sd_samplers_cfg_denoiser.py`` ``CFGDenoiser.forward``
  (``webui-host.md`` §3.1): ``reconstruct_multicond_batch(cond, self.step)``, one batched
  ``inner_model(x_in, sigma_in, cond=make_condition_dict([cond rows, uncond rows], image_cond_in))``
  call (``x_in`` a new tensor: each image's latent once per AND-part, then the latents again for the
  uncond rows), ``combine_denoised``, ``self.step += 1``. Left out, because they are off by default
  or do not change the cost: interruption, the refiner switch, masks (img2img), the denoiser
  callbacks, skip-early-cond / NGMS, padding of cond and uncond, unbatched cond/uncond, live preview.
* :class:`PlainPrompts` — ``modules/prompt_parser`` for plain prompts only (no ``AND``, no prompt
  editing, no emphasis): one conditioning row per image, one schedule entry per prompt.
* :class:`ClipTokens` — 77-token chunks like ``tokenize_line`` (SOT, up to 75 tokens, EOT padding)
  with CLIP's real BPE ids (``clip.simple_tokenizer``, the vocabulary of SD's tokenizer); no
  emphasis, no ``BREAK``, no comma back-tracking.
* :class:`Sampler` — the part of ``KDiffusionSampler.sample`` that matters here: the latent scaled
  by ``sigmas[0]``, the step counter reset, ``self.func(model_wrap_cfg, x, extra_args=...,
  disable=..., callback=..., sigmas=...)`` with ``sigmas`` passed by keyword because the function's
  signature has it.
* :func:`use_sdp_attention` — the WebUI's ``sdp`` cross-attention optimisation
  (``sd_hijack_optimizations.scaled_dot_product_attention_forward``), put on each attention module
  instance.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..passconcepts import Tokenizer
from ..tokens import CHUNK_TOKENS, PROMPT_TOKENS

ID_START = 49406
ID_END = 49407


class ClipTokens:
    """CLIP's BPE (``clip.simple_tokenizer.SimpleTokenizer``) in 77-token chunks, for plain prompts."""

    def __init__(self) -> None:
        from clip.simple_tokenizer import SimpleTokenizer

        self.bpe = SimpleTokenizer()

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [self.bpe.encode(t) for t in texts]

    def tokenize_line(self, line: str) -> tuple[list[list[int]], int]:
        """``(chunks, token count)``; each chunk ``[SOT, <=75 ids, EOT...]`` of 77 ids."""
        ids = self.bpe.encode(line)
        pieces = [ids[i:i + PROMPT_TOKENS] for i in range(0, len(ids), PROMPT_TOKENS)] or [[]]
        chunks = [[ID_START] + p + [ID_END] * (CHUNK_TOKENS - 1 - len(p)) for p in pieces]
        return chunks, len(ids)

    def ids(self, line: str) -> torch.Tensor:
        """The context's token ids ``[1, 77*k]`` of ``line``."""
        chunks, _ = self.tokenize_line(line)
        return torch.tensor([sum(chunks, [])])

    def decode(self, token_id: int) -> str:
        return self.bpe.decoder[token_id]

    def tokenizer(self) -> Tokenizer:
        """The :class:`~astar_ext.passconcepts.Tokenizer` that ``PassConcepts`` takes."""
        return Tokenizer(self.tokenize_line, self.tokenize, ID_END, self.decode)


@dataclasses.dataclass
class Conditioning:
    """The conditioning of a batch: one row per image (a tensor ``[B, 77*k, D]`` or, for SDXL, a dict
    of tensors with ``crossattn`` and ``vector``). Stands in for the WebUI's
    ``MulticondLearnedConditioning`` (cond) and ``ScheduledPromptConditioning`` lists (uncond)."""

    rows: Any

    @property
    def batch(self) -> int:
        t = self.rows["crossattn"] if isinstance(self.rows, dict) else self.rows
        return int(t.shape[0])


class PlainPrompts:
    """The ``prompt_parser`` functions A-STAR and the CFG denoiser use, for plain prompts only."""

    @staticmethod
    def get_multicond_prompt_list(prompts: Sequence[str]) -> tuple[list[list[tuple[int, float]]], list[str], dict]:
        return [[(i, 1.0)] for i in range(len(prompts))], list(prompts), {p: i for i, p in enumerate(prompts)}

    @staticmethod
    def get_learned_conditioning_prompt_schedules(prompts: Sequence[str], steps: int, hires_steps: int | None = None,
                                                  use_old_scheduling: bool = False) -> list[list[list]]:
        return [[[steps, p]] for p in prompts]

    @staticmethod
    def reconstruct_multicond_batch(cond: Conditioning, current_step: int) -> tuple[list, Any]:
        return [[(i, 1.0)] for i in range(cond.batch)], cond.rows

    @staticmethod
    def reconstruct_cond_batch(uncond: Conditioning, current_step: int) -> Any:
        return uncond.rows


def catenate_conds(conds: Sequence[Any]) -> Any:
    if isinstance(conds[0], dict):
        return {key: torch.cat([c[key] for c in conds]) for key in conds[0]}
    return torch.cat(list(conds))


def make_condition_dict(c_crossattn: Any, c_concat: torch.Tensor) -> dict:
    if isinstance(c_crossattn, dict):
        return {**c_crossattn, "c_concat": [c_concat]}
    return {"c_crossattn": [c_crossattn], "c_concat": [c_concat]}


class CFGDenoiser(nn.Module):
    """The main path of WebUI 1.10.1's ``CFGDenoiser.forward`` (see the module docstring).

    ``inner_model`` is k-diffusion's ``CompVisDenoiser`` around the model; the sampler calls
    ``model(x, sigma, cond=..., uncond=..., cond_scale=..., s_min_uncond=..., image_cond=...)``.
    ``step`` counts the calls (reset by :class:`Sampler` when sampling starts).
    """

    def __init__(self, inner_model: nn.Module, prompt_parser: Any = PlainPrompts):
        super().__init__()
        self.inner_model = inner_model
        self.prompt_parser = prompt_parser
        self.step = 0

    @staticmethod
    def combine_denoised(x_out: torch.Tensor, conds_list: list, uncond: Any, cond_scale: float) -> torch.Tensor:
        n = uncond["crossattn"].shape[0] if isinstance(uncond, dict) else uncond.shape[0]
        denoised_uncond = x_out[-n:]
        denoised = torch.clone(denoised_uncond)
        for i, conds in enumerate(conds_list):
            for row, weight in conds:
                denoised[i] += (x_out[row] - denoised_uncond[i]) * (weight * cond_scale)
        return denoised

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, uncond: Conditioning, cond: Conditioning,
                cond_scale: float, s_min_uncond: float, image_cond: torch.Tensor) -> torch.Tensor:
        conds_list, tensor = self.prompt_parser.reconstruct_multicond_batch(cond, self.step)
        uncond_rows = self.prompt_parser.reconstruct_cond_batch(uncond, self.step)
        repeats = [len(c) for c in conds_list]

        def repeat_rows(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.stack([t[i] for _ in range(n)]) for i, n in enumerate(repeats)])

        x_in = torch.cat([repeat_rows(x), x])
        sigma_in = torch.cat([repeat_rows(sigma), sigma])
        image_cond_in = torch.cat([repeat_rows(image_cond), image_cond])
        cond_in = catenate_conds([tensor, uncond_rows])
        x_out = self.inner_model(x_in, sigma_in, cond=make_condition_dict(cond_in, image_cond_in))
        denoised = self.combine_denoised(x_out, conds_list, uncond_rows, cond_scale)
        self.step += 1
        return denoised


class Sampler:
    """The k-diffusion sampler object: ``func`` (what ``PassRun.attach`` wraps) and ``model_wrap_cfg``."""

    def __init__(self, func: Callable, model_wrap_cfg: CFGDenoiser):
        self.func = func
        self.model_wrap_cfg = model_wrap_cfg

    def sample(self, x: torch.Tensor, sigmas: torch.Tensor, cond: Conditioning, uncond: Conditioning,
               cond_scale: float, image_cond: torch.Tensor) -> torch.Tensor:
        """txt2img's ``KDiffusionSampler.sample``: ``x`` is unit noise; runs under ``no_grad`` (the
        sampler functions are decorated with it too)."""
        self.model_wrap_cfg.step = 0
        x = x * sigmas[0]
        extra = {}
        parameters = inspect.signature(self.func).parameters
        if "sigmas" in parameters:
            extra["sigmas"] = sigmas
        if "n" in parameters:
            extra["n"] = len(sigmas) - 1
        args = {"cond": cond, "image_cond": image_cond, "uncond": uncond, "cond_scale": cond_scale,
                "s_min_uncond": 0.0}
        with torch.no_grad():
            return self.func(self.model_wrap_cfg, x, extra_args=args, disable=True, callback=None, **extra)


def sdp_attention_forward(self: nn.Module, x: torch.Tensor, context: torch.Tensor | None = None,
                          mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
    """WebUI 1.10.1's ``scaled_dot_product_attention_forward`` (``opts.upcast_attn`` off)."""
    batch_size, _, _ = x.shape
    h = self.heads
    q_in = self.to_q(x)
    context = x if context is None else context
    k_in = self.to_k(context)
    v_in = self.to_v(context)
    head_dim = q_in.shape[-1] // h
    q = q_in.view(batch_size, -1, h, head_dim).transpose(1, 2)
    k = k_in.view(batch_size, -1, h, head_dim).transpose(1, 2)
    v = v_in.view(batch_size, -1, h, head_dim).transpose(1, 2)
    del q_in, k_in, v_in
    dtype = q.dtype
    if mask is not None:
        mask = mask.unsqueeze(1).unsqueeze(1).repeat(1, h, 1, 1)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
    out = out.transpose(1, 2).reshape(batch_size, -1, h * head_dim).to(dtype)
    out = self.to_out[0](out)
    return self.to_out[1](out)


def use_sdp_attention(unet: nn.Module) -> int:
    """Give every ``CrossAttention`` module of ``unet`` (self- and cross-attention) the SDP forward,
    per instance; returns how many modules were changed."""
    changed = 0
    for module in unet.modules():
        if type(module).__name__ in ("CrossAttention", "MemoryEfficientCrossAttention"):
            module.forward = types.MethodType(sdp_attention_forward, module)
            changed += 1
    return changed
