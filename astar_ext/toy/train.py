"""Train the toy model v2 on generated scenes: seeded, resumable, CPU or GPU, one command.

    python -m astar_ext.toy.train --dir runs/toy2 --export astar_ext/toy/toy_model.pt

Two stages, each resumed from (or, when complete, loaded from) its file in ``--dir``:

1. **Latent cache** (``cache.pt``, :func:`build_cache`): ``--scenes`` random scenes of the training mix
   rendered at 256 px, encoded once by the toy VAE (:mod:`astar_ext.toy.vae`; its weights are constructed,
   not trained) with their captions; ``scale_factor`` = 1 / the standard deviation of these latents (SD 1.x's
   0.18215 is the same kind of number).
2. **UNet + text encoder** (``model.ckpt``, :func:`train`) on the cached latents; the VAE is exported with them.

Objective of stage 3: v-prediction (Salimans & Ho 2022, SD 2.x's 768-v models):
``|| v - v_theta(z_t, t, c) ||^2`` with ``z_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps``,
``v = sqrt(a_t) eps - sqrt(1 - a_t) x_0``, ``a_t`` = SD's ``alphas_cumprod``, ``t`` uniform over the 1000
steps (``--min-snr G`` weights it by Min-SNR-G, Hang et al. 2023; 0 = unweighted). Captions are replaced by
the empty prompt with probability 0.1 (classifier-free guidance). AdamW, linear warm-up then a constant rate
(the text encoder's ``--text-lr-scale`` times the UNet's), gradient clipping, an EMA of the weights (the exported
weights).

**The data produce the neglect** (:class:`~astar_ext.toy.data.DataMix`, ``--absent``): 30 % of the
captions of one- and two-object scenes name one more object that the image does not show. A model that
learns this data leaves out a named object now and then however long it trains, as SD, trained on web
captions that name what a photo does not show, does. A run can go on from its checkpoint on other captions
(``--absent 0.5 --cache DIR/cache-absent05.pt``: a second cache); each segment of ``history`` in the
checkpoint and the exported ``meta`` records its settings and its cache's config (``data``).

Reproducible: the cached scenes and the UNet batch of step ``s`` (cache rows,
timesteps, noise, dropped captions) depend only on the seed and ``s`` (or the scene's index), so a run
that is stopped and resumed sees the same data as one that is not. Checkpoints (model, EMA, optimiser,
step, accumulated wall time) are written every ``--save-every`` steps and at the end; ``--max-minutes``
stops early with a checkpoint (resume with the same command).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np
import torch

from . import data as D
from .model import ToyConfig, ToyLDM, save_weights
from .vae import ToyVAE, VAEConfig

SCALE = 8  # the model's images are 32 * 8 = 256 px
CAPTION_DROPOUT = 0.1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch: int = 16
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    ema: float = 0.998
    seed: int = 0
    min_snr: float = 0.0  # 0: unweighted v-loss
    high_noise: float = 0.0  # share of the batch with t drawn from [HIGH_NOISE_FROM, 1000) instead of [0, 1000)
    text_lr_scale: float = 1.0  # the text encoder's learning rate is lr times this


HIGH_NOISE_FROM = 600


@dataclasses.dataclass(frozen=True)
class CacheConfig:
    """The cached training scenes: ``scenes`` random scenes of the mix ``one``/``two``/``three`` objects
    whose captions name an undrawn object with probability ``absent`` (see :class:`~astar_ext.toy.data.DataMix`)."""

    scenes: int = 5000
    one: float = 0.5
    two: float = 0.35
    three: float = 0.15
    absent: float = 0.3
    seed: int = 0

    @property
    def mix(self) -> D.DataMix:
        return D.DataMix(self.one, self.two, self.three, absent=self.absent)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over ``cfg.warmup`` steps, then constant (the EMA does the averaging). A schedule
    that does not depend on ``cfg.steps`` makes a run stopped at step N equal to a run of ``--steps N``."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup)


def _atomic_save(obj: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


# --- stage 1: the latent cache --------------------------------------------------------------------------------

def build_cache(vae: ToyVAE, cfg: CacheConfig, path: str, chunk: int = 250) -> dict:
    """Encode ``cfg.scenes`` scenes (scene ``i`` depends only on ``(cfg.seed, i)``); resumable by chunks.

    Returns ``{"latents": [N, 4, 32, 32] float16 (unscaled), "captions": [N], "scale_factor", "config",
    "seconds"}``."""
    state = torch.load(path, weights_only=True) if os.path.exists(path) else None
    if state is not None and state["config"] != dataclasses.asdict(cfg):
        raise ValueError(f"{path} was built with {state['config']}, not {dataclasses.asdict(cfg)}: remove it")
    if state is None:
        state = {"latents": [], "captions": [], "config": dataclasses.asdict(cfg), "seconds": 0.0}
    done = sum(len(x) for x in state["latents"])
    t0 = time.perf_counter()
    while done < cfg.scenes:
        n = min(chunk, cfg.scenes - done)
        scenes = [D.random_scene(np.random.default_rng([cfg.seed, 11, i]), cfg.mix) for i in range(done, done + n)]
        latents = []
        with torch.no_grad():
            for start in range(0, n, 25):
                part = scenes[start:start + 25]
                images = np.stack([D.render_scene(s, SCALE) for s in part]).transpose(0, 3, 1, 2) * 2 - 1
                latents.append(vae.encode(torch.from_numpy(images.astype(np.float32))).half())
        state["latents"].append(torch.cat(latents))
        state["captions"].extend(s.caption for s in scenes)
        done += n
        state["seconds"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        _atomic_save(state, path)
        print(f"cache: {done} / {cfg.scenes} scenes encoded ({state['seconds'] / 60:.1f} min)", flush=True)
    latents = torch.cat(state["latents"]) if isinstance(state["latents"], list) else state["latents"]
    return {"latents": latents, "captions": list(state["captions"]), "config": state["config"],
            "seconds": state["seconds"], "scale_factor": float(1.0 / latents.float().std())}


# --- stage 2: the UNet and the text encoder ---------------------------------------------------------------------

def make_batch(model: ToyLDM, cache: dict, cfg: TrainConfig, step: int, device: torch.device):
    """The batch of ``step``: ``(z_t [B, 4, 32, 32], t [B], v [B, 4, 32, 32], ids [B, 77], weight [B])``."""
    rng = np.random.default_rng([cfg.seed, step])
    rows = rng.integers(0, len(cache["captions"]), size=cfg.batch)
    drop = rng.random(cfg.batch) < CAPTION_DROPOUT
    captions = ["" if d else cache["captions"][r] for r, d in zip(rows, drop)]
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    x0 = cache["latents"][torch.from_numpy(rows)].float() * model.config.scale_factor
    t = torch.randint(0, 1000, (cfg.batch,), generator=gen)
    if cfg.high_noise > 0:  # drawn after the step's other numbers, so that 0 keeps earlier runs' batches
        high = torch.rand(cfg.batch, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + step + 7)) \
            < cfg.high_noise
        t = torch.where(high, HIGH_NOISE_FROM + t * (1000 - HIGH_NOISE_FROM) // 1000, t)
    eps = torch.randn(x0.shape, generator=gen)
    ac = model.alphas_cumprod.cpu()[t].view(-1, 1, 1, 1)
    zt = ac.sqrt() * x0 + (1 - ac).sqrt() * eps
    v = ac.sqrt() * eps - (1 - ac).sqrt() * x0
    snr = ac.flatten() / (1 - ac.flatten())
    weight = snr.clamp(max=cfg.min_snr) / (snr + 1) if cfg.min_snr > 0 else torch.ones_like(snr)
    ids = torch.tensor(model.tokenizer.ids(captions))
    return zt.to(device), t.to(device), v.to(device), ids.to(device), weight.to(device)


def _settings(cfg: TrainConfig | dict) -> dict:
    """Everything of a config but its number of steps (what a history segment records)."""
    d = dataclasses.asdict(cfg) if isinstance(cfg, TrainConfig) else dict(cfg)
    d.pop("steps", None)
    d.setdefault("high_noise", 0.0)  # checkpoints from before the option
    d.setdefault("text_lr_scale", 1.0)
    return d


def _param_groups(model: ToyLDM, cfg: TrainConfig) -> list[dict]:
    """The UNet's trained parameters, then the text encoder's, each group with its ``lr_scale`` (the order of
    ``model.parameters()``, so that an optimiser state saved with one group of all of them still fits)."""
    unet = [p for p in model.diffusion_model.parameters() if p.requires_grad]
    text = [p for p in model.cond_stage_model.parameters() if p.requires_grad]
    return [{"params": unet, "lr_scale": 1.0}, {"params": text, "lr_scale": cfg.text_lr_scale}]


def _fit_opt_state(saved: dict, groups: list[dict]) -> dict:
    """An AdamW state saved with a single group of every parameter, split into ``groups`` (same order; the caller
    sets each group's ``lr_scale``)."""
    if len(saved["param_groups"]) == len(groups):
        return saved
    (only,) = saved["param_groups"]
    index, split = list(only["params"]), []
    for g in groups:
        n = len(g["params"])
        split.append({**only, "params": index[:n]})
        index = index[n:]
    return {"state": saved["state"], "param_groups": split}


def train(cfg: TrainConfig, checkpoint: str, export: str | None, vae: ToyVAE, cache: dict,
          max_minutes: float | None = None, save_every: int = 100, log_every: int = 25,
          record: dict | None = None, attention_resolutions: tuple[int, ...] | None = None) -> dict:
    """Stage 2: train the UNet and the text encoder on ``cache`` (the VAE is frozen); export the EMA weights
    with the VAE's when the run is complete. Returns the training record (``meta`` of the exported weights)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    config = ToyConfig(scale_factor=round(cache["scale_factor"], 5))
    if attention_resolutions is not None:
        config = dataclasses.replace(config, attention_resolutions=tuple(attention_resolutions))
    model = ToyLDM(config)
    model.first_stage_model.load_state_dict(vae.state_dict())
    model.first_stage_model.requires_grad_(False)
    model.to(device)
    ema = ToyLDM(config).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    groups = _param_groups(model, cfg)
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, seconds, history = 0, 0.0, []
    settings = {**_settings(cfg), "data": dict(cache["config"])}  # another cache (another --absent, say): a new segment
    if os.path.exists(checkpoint):
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if _settings(state["train_config"]) != _settings(cfg):
            print(f"note: the checkpoint was trained with {state['train_config']}")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(_fit_opt_state(state["opt"], groups))
        for group, g in zip(opt.param_groups, groups):
            group["lr_scale"] = g["lr_scale"]
        step, seconds = state["step"], state["seconds"]
        history = state.get("history") or [{"to_step": step, "settings": _settings(state["train_config"])}]
        print(f"resumed at step {step} ({seconds / 60:.1f} min so far)")
    if not history or _settings(history[-1]["settings"]) != settings:
        history.append({"to_step": step, "settings": settings})

    def save() -> None:
        history[-1]["to_step"] = step
        _atomic_save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                      "seconds": seconds, "train_config": dataclasses.asdict(cfg), "history": history}, checkpoint)

    n_params = sum(p.numel() for p in params)
    print(f"toy model v2: {n_params / 1e6:.2f} M trained parameters, device {device}, {cfg}")
    model.train()
    t_start = t_mark = time.perf_counter()
    losses = []
    while step < cfg.steps:
        if max_minutes is not None and time.perf_counter() - t_start > 60 * max_minutes:
            print("time limit reached")
            break
        zt, t, v, ids, weight = make_batch(model, cache, cfg, step, device)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step) * group["lr_scale"]
        pred = model.apply_model(zt, t, {"c_crossattn": [model.encode(ids)]})
        loss = (weight * (pred - v).pow(2).mean((1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                if pm.requires_grad:
                    pe.lerp_(pm, 1 - decay)
        losses.append(loss.item())
        step += 1
        now = time.perf_counter()
        seconds += now - t_mark
        t_mark = now
        if step % log_every == 0 or step == cfg.steps:
            print(f"step {step:6d}  loss {np.mean(losses):.4f}  lr {lr_at(cfg, step - 1):.2e}  "
                  f"{seconds / 60:.1f} min", flush=True)
            losses = []
        if step % save_every == 0:
            save()
    save()
    meta = {"steps": step, "train_seconds": round(seconds, 1), "train_config": dataclasses.asdict(cfg),
            "history": history, "device": str(device), "threads": torch.get_num_threads(),
            "torch": str(torch.__version__), **(record or {})}
    if export and step >= cfg.steps:
        save_weights(ema.cpu(), export, meta)
        print(f"exported the EMA weights to {export} ({os.path.getsize(export) / 1e6:.2f} MB)")
    return meta


def main(argv: list[str] | None = None) -> dict:
    d, c = TrainConfig(), CacheConfig()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=os.path.join("runs", "toy2"), help="checkpoints of the three stages")
    ap.add_argument("--steps", type=int, default=d.steps, help="UNet steps")
    ap.add_argument("--batch", type=int, default=d.batch)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--min-snr", type=float, default=d.min_snr, help="Min-SNR gamma of the loss weighting; 0: none")
    ap.add_argument("--high-noise", type=float, default=d.high_noise,
                    help=f"share of each batch with t from [{HIGH_NOISE_FROM}, 1000): where the layout is decided "
                         "and the noisy latent tells little, so the text must")
    ap.add_argument("--text-lr-scale", type=float, default=d.text_lr_scale,
                    help="the text encoder's learning rate as a multiple of --lr")
    ap.add_argument("--cache", default=None,
                    help="the latent cache's file (default: --dir/cache.pt); another --absent or --mix needs another "
                         "file, so that a run can go on on new data from its checkpoint")
    ap.add_argument("--scenes", type=int, default=c.scenes, help="cached training scenes")
    ap.add_argument("--mix", type=float, nargs=3, default=(c.one, c.two, c.three), metavar=("ONE", "TWO", "THREE"),
                    help="probabilities of one, two and three objects per scene")
    ap.add_argument("--absent", type=float, default=c.absent,
                    help="share of one- and two-object captions that name one more, undrawn object")
    ap.add_argument("--attention", default=None, metavar="DS",
                    help="the UNet's cross-attention levels as downsampling factors (default: the shipped "
                         "model's '2,4', at 16x16, 8x8 and in the middle block; '4' leaves out 16x16)")
    ap.add_argument("--export", default=None, help="write the EMA weights (fp16) here when the run is complete")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this long")
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    vae = ToyVAE(VAEConfig()).eval()
    ccfg = CacheConfig(a.scenes, *a.mix, absent=a.absent, seed=a.seed)
    cache = build_cache(vae, ccfg, a.cache or os.path.join(a.dir, "cache.pt"))
    cfg = TrainConfig(steps=a.steps, batch=a.batch, lr=a.lr, seed=a.seed, min_snr=a.min_snr, high_noise=a.high_noise,
                      text_lr_scale=a.text_lr_scale)
    record = {"cache": {"config": cache["config"], "seconds": round(cache["seconds"], 1),
                                           "scale_factor": cache["scale_factor"]}}
    attention = tuple(int(x) for x in a.attention.split(",")) if a.attention else None
    return train(cfg, os.path.join(a.dir, "model.ckpt"), a.export, vae, cache, a.max_minutes, a.save_every,
                 record=record, attention_resolutions=attention)


if __name__ == "__main__":
    main()
