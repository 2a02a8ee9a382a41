"""Read cross-attention probabilities out of a UNet without touching its attention kernel.

:class:`AttentionCapture` puts a forward hook (``with_kwargs=True``, because ``context`` arrives
only as a keyword) on each selected ``attn2`` module. The module's own forward runs unchanged —
xformers, SDP, split attention, whatever the host chose — and the hook recomputes, in fp32,
``softmax(q k^T * scale)`` from ``module.to_q(x)`` and ``module.to_k(context)``, averages the heads
and keeps only the requested context columns. It records only inside :meth:`recording`, into a
store keyed by layer name (no call counting), so a normal denoiser call costs one early return per
hooked layer and produces bitwise the same output.

Layers are found by class name (``CrossAttention`` of ldm and sgm, ldm's
``MemoryEfficientCrossAttention``) under the attribute name ``attn2``, and by map resolution: a
static walk of the UNet counts the stride-2 down- and up-samplings before each layer
(its "level"; the map is ``latent / 2**level``). Level 2 is the paper's 16x16 at 512 px for SD 1.x
(the five layers of ``input_blocks.7/8`` and ``output_blocks.3/4/5``), 24x24 for SD 2.x at 768 px,
and 32x32 for SDXL at 1024 px. Level 1 (image/16, :data:`MAP_LEVELS`) is the finer choice of the WebUI setting
``astar_map_level``: SD 1.x/2.x's five layers of ``input_blocks.4/5`` and ``output_blocks.6/7/8``, SDXL's ten.

Which layers of that level: all of them by default (Attend-and-Excite's rule); :func:`select_layers` picks a
part of the UNet instead (``"up"``: the decoder's, ``"down+mid"``, ...; :data:`LAYER_CHOICES`), for the
cost of the gradient pass on SDXL, whose image/32 level holds 60 layers (docs/design.md, "SDXL layers").

Hooks are owned: :meth:`install` is idempotent, :meth:`remove` removes every handle, the object is
a context manager, and :func:`remove_all` removes the hooks of every live capture (for a UI
reload).
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from .maps import map_size

ATTENTION_CLASSES = ("CrossAttention", "MemoryEfficientCrossAttention")
DOWN_CLASSES = ("Downsample",)
UP_CLASSES = ("Upsample",)

_LIVE: weakref.WeakSet[AttentionCapture] = weakref.WeakSet()

PARTS = {"input_blocks": "down", "middle_block": "mid", "output_blocks": "up"}
LAYER_CHOICES = ("all", "down", "mid", "up", "down+mid", "mid+up", "down+up")
"""Parts of the UNet whose layers :func:`select_layers` keeps: ``down`` = ``input_blocks`` (encoder),
``mid`` = ``middle_block``, ``up`` = ``output_blocks`` (decoder), joined with ``+``; ``all`` = every layer."""

MAP_LEVELS = {"image/32": 2, "image/16": 1}
"""The map resolutions a user can choose (the WebUI setting ``astar_map_level``) and their levels: image/32
(latent/4; the paper's 16x16 at 512 px on SD 1.x, the default) and image/16 (latent/2; 4x the map cells)."""
DEFAULT_MAP_LEVEL = "image/32"


def level_name(level: int) -> str:
    """``"image/32"`` for level 2: the map's stride in image pixels (the latent is image/8, each level halves it)."""
    return f"image/{8 * 2 ** level}"


def parse_map_level(value: object) -> int:
    """The level of a map-resolution setting (``"image/32"`` -> 2, ``"image/16"`` -> 1); raises ``ValueError``."""
    text = str(value).strip().lower().replace(" ", "")
    if text not in MAP_LEVELS:
        raise ValueError(f"unknown map resolution {value!r}: use {' or '.join(MAP_LEVELS)}")
    return MAP_LEVELS[text]


class CaptureComplete(Exception):
    """Raised from the last needed layer's hook to skip the rest of the UNet (early exit).

    :meth:`AttentionCapture.recording` swallows it, so the ``with`` block simply ends there.
    """


class CaptureError(RuntimeError):
    """The capture cannot work on this model or this call (message says why)."""


def attention_levels(unet: nn.Module, attn_name: str = "attn2",
                     classes: Sequence[str] = ATTENTION_CLASSES) -> dict[str, int]:
    """Map each cross-attention module of ``unet`` (name relative to ``unet``) to its level.

    The level is the number of stride-2 downsamplings minus upsamplings that precede the module
    in execution order; ``named_modules()`` lists the ldm/sgm ``UNetModel`` in that order
    (input_blocks, middle_block, output_blocks; an output block's ``Upsample`` follows its
    transformer). The result is ordered by execution.
    """
    levels: dict[str, int] = {}
    level = 0
    for name, module in unet.named_modules():
        cls = type(module).__name__
        parts = name.split(".")
        if parts[-1] in ("h_upd", "x_upd"):
            continue  # resampling inside a ResBlock (counted through the ResBlock itself)
        if cls in DOWN_CLASSES:
            level += 1
        elif cls in UP_CLASSES:
            level -= 1
        elif getattr(module, "updown", False):  # a ResBlock that resamples
            down = type(getattr(module, "h_upd", None)).__name__ in DOWN_CLASSES
            level += 1 if down else -1
        elif parts[-1] == attn_name and cls in classes:
            levels[name] = level
    return levels


def layer_part(name: str) -> str:
    """``"down"``, ``"mid"`` or ``"up"``: the part of the UNet a layer name (relative to the UNet) is in."""
    head = name.split(".", 1)[0]
    if head not in PARTS:
        raise CaptureError(f"{name!r} is not in input_blocks, middle_block or output_blocks")
    return PARTS[head]


def parse_layer_choice(choice: str) -> frozenset[str]:
    """``"all"`` or parts joined with ``+`` (``"down+mid"``) -> the set of parts; raises ``ValueError``."""
    text = choice.strip().lower().replace(" ", "")
    if text == "all":
        return frozenset(PARTS.values())
    parts = frozenset(text.split("+"))
    unknown = parts - set(PARTS.values())
    if not text or unknown:
        raise ValueError(f"unknown layer choice {choice!r}: use 'all' or parts among down, mid, up joined with '+'")
    return parts


def select_layers(unet: nn.Module, level: int = 2, choice: str = "all") -> list[str]:
    """The cross-attention layers of ``unet`` at ``level`` in the parts ``choice`` names, in execution order.

    Raises :class:`CaptureError` when that leaves no layer (e.g. ``"mid"`` on SSD-1B, whose middle block has
    no transformer, or on SD 1.x, whose middle block is at level 3).
    """
    parts = parse_layer_choice(choice)
    levels = attention_levels(unet)
    at_level = [name for name, lv in levels.items() if lv == level]
    chosen = [name for name in at_level if layer_part(name) in parts]
    if not chosen:
        have = sorted({layer_part(n) for n in at_level}, key=list(PARTS.values()).index)
        raise CaptureError(f"this UNet has no cross-attention layer in {choice!r} at level {level} "
                           f"({level_name(level)}; parts with layers there: {', '.join(have) or 'none'})")
    return chosen


@dataclasses.dataclass
class Recording:
    """What one :meth:`AttentionCapture.recording` collected.

    Attributes:
        probs: layer name -> head-averaged probabilities ``[B, h*w, C]`` (fp32) of the requested
            columns, in the order the layers ran.
        hw: the map size ``(h, w)`` (from the latent size seen by the UNet).
        latent_hw: the spatial size of the UNet input.
        complete: every selected layer recorded.
    """

    columns: torch.Tensor
    probs: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    hw: tuple[int, int] | None = None
    latent_hw: tuple[int, int] | None = None
    early_exit: bool = False
    all_columns: bool = False
    recompute: bool = False

    @property
    def complete(self) -> bool:
        return bool(self.probs) and self._expected == len(self.probs)

    def column_probs(self) -> dict[str, torch.Tensor]:
        """``probs`` restricted to the requested columns, ``[B, h*w, C]`` (with ``all_columns``
        the recorded ``[B, h*w, T]`` tensors are gathered now; otherwise ``probs`` itself)."""
        if not self.all_columns:
            return self.probs
        out = {}
        for name, p in self.probs.items():
            index = self.columns.to(p.device)[:, None, :].expand(p.shape[0], p.shape[1], self.columns.shape[1])
            out[name] = p.gather(-1, index)
        return out

    _expected: int = 0


class AttentionCapture:
    """Forward hooks on a UNet's cross-attention layers at one map resolution.

    Args:
        unet: the ``UNetModel`` (ldm or sgm ``diffusion_model``).
        level: map level (see :func:`attention_levels`); 2 = image/32.
        layers: explicit layer names (relative to ``unet``) instead of all layers at ``level``.
        context_transform: ``f(context, module) -> context`` applied before ``to_k`` (the WebUI's
            hypernetworks, which are chosen per layer).

    Usage::

        with AttentionCapture(unet) as cap:
            with cap.recording(columns) as rec:      # columns: [B, C] long
                unet(x, t, context=ctx)
            rec.probs                                # {layer: [B, h*w, C]}
    """

    def __init__(
        self,
        unet: nn.Module,
        level: int = 2,
        layers: Sequence[str] | None = None,
        context_transform: Callable[[torch.Tensor, nn.Module], torch.Tensor] | None = None,
    ):
        self.unet = unet
        self.level = level
        all_levels = attention_levels(unet)
        if layers is None:
            self.layers = [name for name, lv in all_levels.items() if lv == level]
        else:
            unknown = [n for n in layers if n not in all_levels]
            if unknown:
                raise CaptureError(f"not cross-attention layers of this UNet: {', '.join(unknown)}")
            order = list(all_levels)
            self.layers = sorted(layers, key=order.index)
            levels = {all_levels[n] for n in self.layers}
            if len(levels) > 1:
                raise CaptureError("the selected layers have different map resolutions")
            if levels:
                self.level = levels.pop()
        if not self.layers:
            raise CaptureError(f"this UNet has no cross-attention layer at level {level} "
                               f"(levels found: {sorted(set(all_levels.values()))})")
        modules = dict(unet.named_modules())
        self.modules = {name: modules[name] for name in self.layers}
        self.context_transform = context_transform
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._active: Recording | None = None

    # --- installation --------------------------------------------------------------------------
    @property
    def installed(self) -> bool:
        return bool(self._handles)

    def install(self) -> AttentionCapture:
        """Register the hooks (a second call does nothing)."""
        if self._handles:
            return self
        try:
            self._handles.append(self.unet.register_forward_pre_hook(self._unet_pre_hook, with_kwargs=True))
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._make_hook(name), with_kwargs=True))
        except BaseException:
            self.remove()
            raise
        _LIVE.add(self)
        return self

    def remove(self) -> None:
        """Remove every hook of this capture (safe to call any number of times)."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()
        self._active = None
        _LIVE.discard(self)

    def __enter__(self) -> AttentionCapture:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # --- recording -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def recording(self, columns: torch.Tensor, early_exit: bool = False, all_columns: bool = False,
                  recompute: bool = False) -> Iterator[Recording]:
        """Record the selected layers' probabilities of ``columns`` (``[B, C]`` long, per row).

        With ``early_exit`` the hook of the last selected layer raises :class:`CaptureComplete`
        once every layer has been recorded; it is swallowed here, so the code after the UNet
        call inside the ``with`` block does not run.

        ``all_columns`` records the probabilities of every context column (``[B, h*w, T]``; use
        :meth:`Recording.column_probs` for the requested ones): the unoptimised variant, kept
        for the benchmark's comparison. ``recompute`` computes the probabilities with
        :class:`ColumnProbabilities`, which keeps only ``q`` and ``k`` for the backward pass
        (in their own dtype) instead of the fp32 softmax over all columns and heads: the same
        values, less memory for a gradient pass, a little more compute in the backward.
        """
        if not self._handles:
            raise CaptureError("recording() needs the capture installed (use it as a context manager)")
        if self._active is not None:
            raise CaptureError("recording() is not re-entrant")
        rec = Recording(columns=columns, early_exit=early_exit, all_columns=all_columns, recompute=recompute,
                        _expected=len(self.layers))
        self._active = rec
        try:
            yield rec
        except CaptureComplete:
            pass
        finally:
            self._active = None

    def _unet_pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        rec = self._active
        if rec is None:
            return None
        x = args[0] if args else kwargs.get("x")
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            rec.latent_hw = (int(x.shape[-2]), int(x.shape[-1]))
            rec.hw = map_size(rec.latent_hw, self.level)
        return None

    def _make_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> None:
            rec = self._active
            if rec is None:
                return None
            x = args[0] if args else kwargs["x"]
            context = kwargs.get("context", args[1] if len(args) > 1 else None)
            if context is None:
                return None
            rec.probs[name] = self._probabilities(module, x, context, rec)
            if rec.early_exit and rec.complete:
                raise CaptureComplete()
            return None

        return hook

    def _probabilities(self, module: nn.Module, x: torch.Tensor, context: torch.Tensor, rec: Recording) -> torch.Tensor:
        """Head-averaged ``softmax(q k^T * scale)`` of the requested columns, ``[B, N, C]`` fp32."""
        columns = rec.columns
        b, n, _ = x.shape
        if columns.shape[0] != b:
            raise CaptureError(f"recording expects {columns.shape[0]} rows but the UNet ran {b}; "
                               "record only your own pass")
        if rec.hw is not None and rec.hw[0] * rec.hw[1] != n:
            raise CaptureError(f"layer has {n} queries, expected {rec.hw[0]}x{rec.hw[1]} at level {self.level}")
        if self.context_transform is not None:
            context = self.context_transform(context, module)
        q = module.to_q(x)
        k = module.to_k(context)
        heads = module.heads
        scale = getattr(module, "scale", (q.shape[-1] // heads) ** -0.5)
        index = None if rec.all_columns else columns.to(q.device)
        if rec.recompute:
            return ColumnProbabilities.apply(q, k, heads, scale, index)
        return head_mean_probabilities(q, k, heads, scale, index)


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off on ``device`` (nothing to turn off on the ``meta`` device, where the benchmark's
    FLOP count runs)."""
    if device.type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)


def _upcast(dtype: torch.dtype) -> torch.dtype:
    """fp32 for half precision and fp32, float64 for float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def head_mean_probabilities(q: torch.Tensor, k: torch.Tensor, heads: int, scale: float,
                            columns: torch.Tensor | None) -> torch.Tensor:
    """``softmax(q k^T * scale)`` in fp32, averaged over heads, of ``columns`` (``[B, C]``; None: all).

    ``q``: ``[B, N, heads*d]``, ``k``: ``[B, T, heads*d]`` (any dtype). Returns ``[B, N, C]`` fp32
    (float64 for float64 inputs, so that the function can be checked with ``gradcheck``).
    """
    b, n, _ = q.shape
    dtype = _upcast(q.dtype)
    with _no_autocast(q.device):
        q = q.to(dtype).reshape(b, n, heads, -1).transpose(1, 2)  # [B, H, N, d]
        k = k.to(dtype).reshape(b, k.shape[1], heads, -1).transpose(1, 2)  # [B, H, T, d]
        probs = (q @ k.transpose(-1, -2) * scale).softmax(-1).mean(1)  # [B, N, T]
        if columns is None:
            return probs
        index = columns[:, None, :].expand(b, n, columns.shape[1])
        return probs.gather(-1, index)


class ColumnProbabilities(torch.autograd.Function):
    """:func:`head_mean_probabilities` that saves only ``q`` and ``k`` for the backward pass.

    Autograd through the plain expression keeps, per captured layer, the fp32 copy of ``q``
    (``[B, H, N, d]``) and the fp32 softmax over every head and context column (``[B, H, N, T]``).
    This function keeps ``q`` and ``k`` as the layer produced them (fp16 under autocast) and
    recomputes the softmax in the backward pass, one layer at a time. The forward values are the
    same operations, so bitwise the same; the gradients agree up to float rounding.

    Backward of ``out = mean_h P[..., cols]`` with ``P = softmax(S)``, ``S = scale * q k^T``:
    ``dP`` is ``g / H`` scattered onto the columns, ``dS = P * (dP - sum_t dP * P)``,
    ``dq = scale * dS k``, ``dk = scale * dS^T q``.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, heads: int, scale: float,  # type: ignore[override]
                columns: torch.Tensor | None) -> torch.Tensor:
        ctx.heads, ctx.scale = heads, scale
        ctx.save_for_backward(q, k, columns)
        return head_mean_probabilities(q, k, heads, scale, columns)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        q_in, k_in, columns = ctx.saved_tensors
        heads, scale = ctx.heads, ctx.scale
        b, n, _ = q_in.shape
        t = k_in.shape[1]
        dtype = _upcast(q_in.dtype)
        with _no_autocast(q_in.device):
            q = q_in.to(dtype).reshape(b, n, heads, -1).transpose(1, 2)  # [B, H, N, d]
            k = k_in.to(dtype).reshape(b, t, heads, -1).transpose(1, 2)  # [B, H, T, d]
            p = (q @ k.transpose(-1, -2) * scale).softmax(-1)  # [B, H, N, T]
            g = grad.to(dtype) / heads
            if columns is not None:
                index = columns[:, None, :].expand(b, n, columns.shape[1])
                g = g.new_zeros(b, n, t).scatter_add_(-1, index, g)
            g = g[:, None]  # [B, 1, N, T], the same for every head
            ds = p * (g - (g * p).sum(-1, keepdim=True))  # [B, H, N, T]
            del p, g
            dq = dk = None
            if ctx.needs_input_grad[0]:
                dq = (ds @ k * scale).transpose(1, 2).reshape(q_in.shape).to(q_in.dtype)
            if ctx.needs_input_grad[1]:
                dk = (ds.transpose(-1, -2) @ q * scale).transpose(1, 2).reshape(k_in.shape).to(k_in.dtype)
        return dq, dk, None, None, None


def remove_all() -> int:
    """Remove the hooks of every live :class:`AttentionCapture`; returns how many were removed."""
    live = list(_LIVE)
    for cap in live:
        cap.remove()
    return len(live)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` of ``module``'s parameters for the block, restore afterwards.

    The latent is the only leaf of the loss pass; frozen weights keep autograd from saving what a
    weight gradient would need.
    """
    changed = [p for p in module.parameters() if p.requires_grad]
    for p in changed:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in changed:
            p.requires_grad_(True)
