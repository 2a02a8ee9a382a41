"""Cost and a signal proxy of each choice of image/32 layers for A-STAR's gradient pass (docs/design.md, "SDXL layers").

For each layer choice (:data:`astar_ext.capture.LAYER_CHOICES` that leave at least one layer) this runs A-STAR's
loss pass as the controller does — record the chosen ``attn2`` layers in a UNet call under ``enable_grad`` with
the weights frozen, stop after the last chosen layer (early exit), build the concept maps (A&E's extraction),
``L_seg + L_ret``, ``dL/dz`` — and reports:

* ``time``: median wall time of the pass (``--reps`` runs after one warm-up), and ``x plain call``: that time over the
  median time of one plain no-grad UNet call (the unit a sampling step costs without CFG);
* ``saved MB``: the activations autograd keeps for the backward pass (unique tensors saved by the graph,
  the frozen weights left out), a device-independent measure of the pass's extra memory;
* ``cos``: cosine between the latent gradient of this choice and that of all layers (the A&E rule);
* ``transfer``: the drop of the all-layer segregation loss (Eq. 2 on the maps of every image/32 layer) after one
  step along this choice's gradient, over the drop after the step ``20 * dL/dz`` along the all-layer gradient
  (A&E's step size at the first step, in UNet-input space), both steps of the same length.
  1 = optimising this subset moves the all-layer objective as much as optimising it directly.

``cos`` and ``transfer`` are measured on the weights given; with random weights they show how the gradient paths
of the parts of the UNet couple, not how well a trained model's maps separate real concepts.

Architectures (``--arch``):

* ``sgm:<yaml>``: sgm's ``UNetModel`` from a WebUI/sgm config (e.g. ``sd_xl_base.yaml``), random weights; needs
  ``sgm`` importable (the WebUI's ``repositories/generative-models``; run with the WebUI's venv). ``--ssd`` then
  deletes the blocks the WebUI's ``convert_sdxl_to_ssd`` deletes (SSD-1B); ``--model-channels 160`` halves every
  width (a quarter of the parameters, same blocks and 64-channel heads) where memory is short.
* ``tiny-sdxl``: :func:`astar_ext.bench.tiny.sdxl_config` on the ldm ``UNetModel`` (any environment with the tests'
  requirements).

Example (the table in docs/design.md)::

    PYTHONPATH=/work/webui-run/webui/repositories/generative-models OMP_NUM_THREADS=1 \\
        /work/webui-run/venv/bin/python -m astar_ext.bench.layers \\
        --arch sgm:/work/webui-run/webui/repositories/generative-models/configs/inference/sd_xl_base.yaml \\
        --size 256 --reps 1 --choices all,up,down,down+mid,mid+up
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ..capture import LAYER_CHOICES, AttentionCapture, CaptureError, frozen, select_layers
from ..losses import astar_loss, retention_masks, segregation_loss
from ..maps import ColumnLayout, concept_maps
from ..tokens import Concept, PromptTokens


def build_sgm(path: str, ssd: bool, model_channels: int | None = None) -> tuple[torch.nn.Module, int, int]:
    import sgm.modules.attention as attention
    from omegaconf import OmegaConf

    attention.XFORMERS_IS_AVAILABLE = False  # as the WebUI sets it (modules/sd_models_xl.py)
    from sgm.modules.diffusionmodules.openaimodel import UNetModel

    cfg = OmegaConf.to_container(OmegaConf.load(path).model.params.network_config.params)
    cfg["use_checkpoint"] = False
    if model_channels:  # a narrower UNet with the same blocks, depths and 64-channel heads
        cfg["model_channels"] = model_channels
    torch.manual_seed(0)
    unet = UNetModel(**cfg)
    if ssd:
        from .tiny import ssd_layout

        ssd_layout(unet, deep_kept=4)
    reinit_zero(unet)
    return unet.eval(), cfg["context_dim"], cfg.get("adm_in_channels") or 0


def build_tiny() -> tuple[torch.nn.Module, int, int]:
    from .tiny import TinyLDM, sdxl_config

    cfg = sdxl_config()
    return TinyLDM(cfg).diffusion_model.eval(), cfg.context_dim, cfg.adm_in_channels


def reinit_zero(module: torch.nn.Module) -> None:
    """Random weights for the zero-initialised output layers, so that every block reaches the output."""
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (torch.nn.Conv2d, torch.nn.Linear)) and not sub.weight.detach().any():
                torch.nn.init.normal_(sub.weight, 0.0, 0.02)


def layout() -> ColumnLayout:
    """"a cat and a dog": cat at column 2, dog at column 5, six prompt tokens; EOT/padding excluded (SDXL's rule)."""
    row = PromptTokens((Concept("cat", (2,)), Concept("dog", (5,))), (6,))
    return ColumnLayout.build([row], normalize_eot=True)


class SavedBytes:
    """Bytes of the unique non-parameter tensors autograd saves while active."""

    def __init__(self, unet: torch.nn.Module):
        self.params = {p.data_ptr() for p in unet.parameters()}
        self.seen: set[tuple[int, int]] = set()
        self.bytes = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if t.data_ptr() not in self.params and key not in self.seen:
            self.seen.add(key)
            self.bytes += key[1]
        return t

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="tiny-sdxl")
    ap.add_argument("--ssd", action="store_true")
    ap.add_argument("--model-channels", type=int, default=None,
                    help="sgm: override model_channels (SDXL: 320) for a narrower UNet of the same layout")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels (latent = size/8)")
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=1, help="latents for cos/transfer (the first is the timed one)")
    ap.add_argument("--choices", default=",".join(LAYER_CHOICES))
    ap.add_argument("--scale", type=float, default=20.0, help="step size of the transfer step (A&E's 20)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    if args.arch.startswith("sgm:"):
        unet, ctx_dim, adm = build_sgm(args.arch[4:], args.ssd, args.model_channels)
    elif args.arch == "tiny-sdxl":
        unet, ctx_dim, adm = build_tiny()
    else:
        raise SystemExit(f"unknown --arch {args.arch}")
    params = sum(p.numel() for p in unet.parameters())
    width = f", model_channels {args.model_channels}" if args.model_channels else ""
    print(f"arch {args.arch}{' (SSD-1B)' if args.ssd else ''}{width}: {params / 1e6:.0f} M parameters, built in "
          f"{time.perf_counter() - t0:.0f} s; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")

    h, w = args.size // 8, (args.width or args.size) // 8
    gen = torch.Generator().manual_seed(0)
    context = torch.randn(1, 77, ctx_dim, generator=gen)
    y = torch.randn(1, adm, generator=gen) if adm else None
    t = torch.tensor([900.0])
    lay = layout()

    def call(z: torch.Tensor) -> None:
        unet(z, timesteps=t, context=context, y=y) if adm else unet(z, t, context=context)

    # the reference unit: one plain no-grad UNet call
    z0 = torch.randn(1, 4, h, w, generator=gen)
    with torch.no_grad():
        call(z0)
        fwd = statistics.median(_timed(lambda: call(z0)) for _ in range(args.reps))
    print(f"latent {h}x{w}: plain UNet call {fwd:.2f} s")

    choices = []
    for choice in args.choices.split(","):
        try:
            choices.append((choice, select_layers(unet, 2, choice)))
        except CaptureError as e:
            print(f"  {choice}: skipped ({e})")

    def grad_of(layers: list[str], z: torch.Tensor, masks, ok, measure: SavedBytes | None = None):
        with AttentionCapture(unet, layers=layers) as cap, frozen(unet), torch.enable_grad():
            leaf = z.detach().clone().requires_grad_(True)
            ctx = measure if measure is not None else _Null()
            with ctx, cap.recording(lay.gather, early_exit=True) as rec:
                call(leaf)
            with ctx:
                maps = concept_maps(rec.probs, lay, rec.hw)
                loss = astar_loss(maps, lay.valid, masks, ok).total.sum()
            (g,) = torch.autograd.grad(loss, leaf)
        return g, maps.detach()

    def reference_overlap(z: torch.Tensor) -> float:
        with AttentionCapture(unet, layers=choices[0][1]) as cap, torch.no_grad():
            with cap.recording(lay.gather, early_exit=True) as rec:
                call(z)
        return float(segregation_loss(concept_maps(rec.probs, lay, rec.hw), lay.valid)[0].sum())

    assert choices and choices[0][0] == "all", "the first choice must be 'all' (the reference)"
    # retention masks from one all-layer pass (the previous step's, as in a run)
    _, maps_all = grad_of(choices[0][1], z0, None, None)
    masks, ok = retention_masks(maps_all)

    rows = []
    grads = {}
    for choice, layers in choices:
        saved = SavedBytes(unet)
        grad_of(layers, z0, masks, ok, saved)  # warm-up, and the saved activations
        times = []
        for _ in range(args.reps):
            t1 = time.perf_counter()
            grads[choice] = grad_of(layers, z0, masks, ok)[0]
            times.append(time.perf_counter() - t1)
        rows.append([choice, len(layers), statistics.median(times), saved.bytes / 2 ** 20])
        print(f"  {choice}: {len(layers)} layers, {statistics.median(times):.2f} s per pass", flush=True)

    cos = {c: [] for c, _ in choices}
    transfer = {c: [] for c, _ in choices}
    for seed in range(args.seeds):
        z = z0 if seed == 0 else torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(100 + seed))
        if seed:
            grads = {c: grad_of(layers, z, masks, ok)[0] for c, layers in choices}
        ref = grads["all"]
        base = reference_overlap(z)
        length = args.scale  # A&E's step at the UNet input: z' = z - 20 dL/dz
        drop_all = base - reference_overlap(z - length * ref)
        for c, g in grads.items():
            cos[c].append(float(torch.nn.functional.cosine_similarity(g.flatten(), ref.flatten(), dim=0)))
            moved = reference_overlap(z - length * g * (ref.norm() / g.norm()))
            transfer[c].append((base - moved) / drop_all if drop_all else float("nan"))

    print()
    print("| layers | count | time per pass (s) | x plain call | saved activations (MB) | cos to all | transfer |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for choice, n, sec, mb in rows:
        print(f"| {choice} | {n} | {sec:.2f} | {sec / fwd:.2f} | {mb:.0f} | {statistics.mean(cos[choice]):.2f} | "
              f"{statistics.mean(transfer[choice]):.2f} |")


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
