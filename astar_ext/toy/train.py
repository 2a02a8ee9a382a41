"""Train the toy model on generated scenes: seeded, resumable, CPU or GPU.

    python -m astar_ext.toy.train --steps 4000 --checkpoint runs/toy.ckpt --export astar_ext/toy/toy_model.pt

Objective: v-prediction (Salimans & Ho 2022, SD 2.x's 768-v models): ``|| v - v_theta(z_t, t, c) ||^2``
with ``z_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps``, ``v = sqrt(a_t) eps - sqrt(1 - a_t) x_0``, ``a_t`` = SD's
``alphas_cumprod``, ``t`` uniform over the 1000 steps, weighted by Min-SNR-5 (Hang et al., ICCV 2023:
``min(SNR_t, 5) / (SNR_t + 1)`` for v), which spends less of a short training on the nearly clean steps.
(With eps-prediction, 250 steps left the x_0 estimate at sigma 10 with an error 300 times the data's
variance; a v-model's x_0 estimate is usable early, which is what a CPU-sized training needs.)
Captions are replaced by the empty prompt with probability 0.1
(classifier-free guidance). AdamW, linear warm-up then a constant rate, gradient clipping, an EMA of the
weights (the exported weights).

A run may change settings when it is resumed (e.g. the loss weighting); the checkpoint and the
exported weights keep the ``history``: each segment's last step and its settings.

Reproducible: the batch of step ``s`` (scenes, timesteps, noise, dropped captions) depends only on
``(seed, s)``, so a run that is stopped and resumed from its checkpoint sees the same data as one that
is not. The checkpoint (model, EMA, optimiser, step, accumulated wall time) is written every
``--save-every`` steps and at the end; ``--max-minutes`` stops early with a checkpoint (resume with the
same command).
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

CAPTION_DROPOUT = 0.1
MIN_SNR_GAMMA = 5.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 4000
    batch: int = 32
    lr: float = 5e-4
    warmup: int = 100
    weight_decay: float = 0.01
    ema: float = 0.999
    seed: int = 0
    one: float = 0.5
    two: float = 0.35
    three: float = 0.15
    min_snr: float = MIN_SNR_GAMMA  # 0: unweighted v-loss


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over ``cfg.warmup`` steps, then constant (the EMA does the averaging). A schedule
    that does not depend on ``cfg.steps`` makes a run stopped at step N equal to a run of ``--steps N``."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup)


def make_batch(model: ToyLDM, cfg: TrainConfig, step: int, device: torch.device):
    """The batch of ``step``: ``(z_t [B, 48, 8, 8], t [B], v [B, 48, 8, 8], ids [B, 77], weight [B])``."""
    rng = np.random.default_rng([cfg.seed, step])
    mix = D.DataMix(cfg.one, cfg.two, cfg.three)
    images, captions = D.batch(rng, cfg.batch, mix)
    drop = rng.random(cfg.batch) < CAPTION_DROPOUT
    captions = ["" if d else c for c, d in zip(captions, drop)]
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    x0 = model.to_latent(torch.from_numpy(images))
    t = torch.randint(0, 1000, (cfg.batch,), generator=gen)
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
    d.setdefault("min_snr", MIN_SNR_GAMMA)
    return d


def train(cfg: TrainConfig, checkpoint: str, export: str | None, max_minutes: float | None = None,
          save_every: int = 250, log_every: int = 50, threads: int = 1) -> dict:
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    model = ToyLDM(ToyConfig()).to(device)
    ema = ToyLDM(ToyConfig()).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, seconds, history = 0, 0.0, []
    settings = _settings(cfg)
    if os.path.exists(checkpoint):
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if _settings(state["train_config"]) != settings:
            print(f"note: the checkpoint was trained with {state['train_config']}")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, seconds = state["step"], state["seconds"]
        history = state.get("history") or [{"to_step": step, "settings": _settings(state["train_config"])}]
        print(f"resumed at step {step} ({seconds / 60:.1f} min so far)")
    if not history or history[-1]["settings"] != settings:
        history.append({"to_step": step, "settings": settings})

    def save() -> None:
        history[-1]["to_step"] = step
        os.makedirs(os.path.dirname(os.path.abspath(checkpoint)), exist_ok=True)
        tmp = checkpoint + ".tmp"
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                    "seconds": seconds, "train_config": dataclasses.asdict(cfg), "history": history}, tmp)
        os.replace(tmp, checkpoint)

    n_params = sum(p.numel() for p in model.parameters())
    print(f"toy model: {n_params / 1e6:.2f} M parameters, device {device}, {cfg}")
    model.train()
    t_start = time.perf_counter()
    t_mark, losses = t_start, []
    while step < cfg.steps:
        if max_minutes is not None and time.perf_counter() - t_start > 60 * max_minutes:
            print("time limit reached")
            break
        zt, t, v, ids, weight = make_batch(model, cfg, step, device)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        pred = model.apply_model(zt, t, {"c_crossattn": [model.encode(ids)]})
        loss = (weight * (pred - v).pow(2).mean((1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
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
            "history": history, "device": str(device), "threads": threads, "torch": str(torch.__version__)}
    if export and step >= cfg.steps:
        save_weights(ema.cpu(), export, meta)
        print(f"exported the EMA weights to {export} ({os.path.getsize(export) / 1e6:.2f} MB)")
    return meta


def main(argv: list[str] | None = None) -> None:
    d = TrainConfig()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--batch", type=int, default=d.batch)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--mix", type=float, nargs=3, default=(d.one, d.two, d.three), metavar=("ONE", "TWO", "THREE"),
                    help="probabilities of one, two and three objects per scene")
    ap.add_argument("--min-snr", type=float, default=d.min_snr,
                    help="Min-SNR gamma of the loss weighting; 0: unweighted v-loss")
    ap.add_argument("--checkpoint", default=os.path.join("runs", "toy.ckpt"), help="resumed from when it exists")
    ap.add_argument("--export", default=None, help="write the EMA weights (fp16) here when the run is complete")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this long")
    ap.add_argument("--save-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    a = ap.parse_args(argv)
    cfg = TrainConfig(steps=a.steps, batch=a.batch, lr=a.lr, seed=a.seed, one=a.mix[0], two=a.mix[1], three=a.mix[2],
                      min_snr=a.min_snr)
    train(cfg, a.checkpoint, a.export, a.max_minutes, a.save_every, threads=a.threads)


if __name__ == "__main__":
    main()
