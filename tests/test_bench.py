"""The benchmark's quick mode runs and reports what it should (structure only: no timing assertions).

``python -m astar_ext.bench --quick --ablate`` on the tiny model: plain and A-STAR generations through
the real k-diffusion sampler and the real ``PassRun``; the report must hold the ratios, the pass
counts and the time split, and the variants that only change the cost (frozen weights, early exit,
columns-only, recompute, per-image passes) must give the same final latent as A-STAR as configured.
The full-size configurations are checked for their architecture on the meta device (no weights).
"""

from __future__ import annotations

import io
import json
import math

import pytest
import torch

from astar_ext.bench import speed as bench
from astar_ext.bench.models import build_unet
from astar_ext.capture import attention_levels


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "report.json"
    out = io.StringIO()
    threads = torch.get_num_threads()
    try:
        report = bench.run_benchmark(bench.parse_args(["--quick", "--ablate", "--json", str(path)]), out)
    finally:
        torch.set_num_threads(threads)
    return report, out.getvalue(), path


def test_quick_report_has_ratios_passes_and_time_split(quick):
    report, text, _ = quick
    main, plain = report["main"], report["plain"]
    assert report["steps"] == 4 and report["size"] == "128x128" and report["reps"] == 1
    assert main["label"] == "A-STAR as configured" and plain["label"] == "plain sampling"
    # the window is the first half of the 4 steps: 2 loss passes with one backward each
    assert main["passes"] == 2 and main["gradients"] == 2 and main["updates"] == 2
    for key in ("time_ratio", "cpu_ratio", "memory_ratio"):
        assert main[key] > 0 and math.isfinite(main[key])
    assert plain["time_ratio"] == 1.0 and plain["memory_ratio"] == 1.0
    assert main["peak_mb"] > 0 and plain["peak_mb"] > 0
    parts = main["forward"] + main["loss"] + main["backward"]
    assert main["forward"] > 0 and main["backward"] > 0
    assert parts <= main["astar_seconds"] <= main["seconds"]
    assert main["sampling"] == pytest.approx(main["seconds"] - main["astar_seconds"])
    assert report["astar_vs_plain_dx"] > 0  # A-STAR changed the result
    assert 0 <= main["overlap_after"] <= 0.5 and 0 <= plain["overlap_after"] <= 0.5
    for line in ("wall time (s)", "peak memory (MiB)", "gradient passes (backward)", "loss-pass forward",
                 "backward (autograd.grad)", "where the time goes", "peak memory: "):
        assert line in text


def test_quick_ablation_table(quick):
    report, text, _ = quick
    rows = {r["key"]: r for r in report["rows"]}
    assert set(rows) == {"plain", "astar", "maps", "freeze", "early_exit", "columns", "recompute", "checkpoint",
                         "skip", "window", "iterations", "plain_b2", "astar_b2", "per_image_b2"}
    for r in report["rows"]:
        assert r["label"][:34] in text
        assert r["time_ratio"] > 0 and r["memory_ratio"] > 0
    # the cost-only options give the same final latent as A-STAR as configured
    for key in ("freeze", "early_exit", "columns", "recompute", "checkpoint", "per_image_b2"):
        assert rows[key]["max_dx"] < bench.NOISE_DX, key
        assert rows[key]["overlap_after"] == pytest.approx(rows["astar" if key != "per_image_b2" else "astar_b2"]
                                                           ["overlap_after"], abs=1e-3)
    # counts follow the settings
    assert rows["window"]["passes"] == 4 and rows["iterations"]["passes"] == 4
    assert rows["maps"]["label"] == "maps at image/16" and rows["maps"]["passes"] == 2
    assert report["maps"] == "image/32" and "maps at image/32 (all layers)" in text
    assert rows["astar_b2"]["passes"] == 2 and rows["per_image_b2"]["passes"] == 4
    assert rows["skip"]["passes"] == 2 and rows["skip"]["gradients"] <= 2
    assert rows["skip"]["gradients"] == 2 - rows["skip"]["below_steps"]
    # the unoptimised early exit keeps more alive for the backward pass
    assert rows["early_exit"]["peak_mb"] > rows["astar"]["peak_mb"]
    assert rows["checkpoint"]["peak_mb"] < rows["astar"]["peak_mb"]


def test_quick_json_is_the_report(quick):
    report, _, path = quick
    saved = json.loads(path.read_text())
    assert saved["main"]["passes"] == report["main"]["passes"]
    assert [r["key"] for r in saved["rows"]] == [r["key"] for r in report["rows"]]


def test_the_map_level_option_sets_every_variant():
    args = bench.parse_args(["--level", "1", "--compare-levels"])
    assert [(v.key, v.level) for v in bench.variants(args)] == [("plain", 1), ("astar", 1), ("maps", 2)]
    assert [v.level for v in bench.variants(bench.parse_args([]))] == [2, 2]
    with pytest.raises(SystemExit):
        bench.parse_args(["--level", "3"])

    # the quality study measures the plain trajectory on the maps of each level (overlaps of two levels differ)
    threads = torch.get_num_threads()
    try:
        report = bench.run_benchmark(bench.parse_args(["--quick", "--compare-levels", "--quality-seeds", "1"]),
                                     io.StringIO())
    finally:
        torch.set_num_threads(threads)
    q = report["quality"]["variants"]
    assert set(q) == {"plain", "astar", "maps", "plain_image/16"}
    assert q["plain_image/16"]["label"] == "plain sampling, maps at image/16"
    assert q["plain_image/16"]["mean"] != q["plain"]["mean"]  # 8x8 vs 16x16 maps of the same latents


def test_full_size_configs_need_a_gpu_or_force():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the full-size configurations run there")
    for config in ("sd15", "sdxl"):
        with pytest.raises(SystemExit) as e:
            bench.parse_args(["--config", config])
        assert e.value.code == 2
    args = bench.parse_args(["--config", "sd15", "--force", "--steps", "2", "--size", "256x256"])
    assert (args.width, args.height, args.steps, args.device, args.dtype) == (256, 256, 2, "cpu", "fp32")
    with pytest.raises(SystemExit):
        bench.parse_args(["--size", "100x100"])


@pytest.mark.parametrize("name, params, counts", [
    ("sd15", 859_520_964, {0: 5, 1: 5, 2: 5, 3: 1}),
    ("sdxl", 2_567_463_684, {1: 10, 2: 60}),
])
def test_full_size_unets_have_the_published_architecture(name, params, counts):
    """Built on the meta device (shapes only): the parameter count of SD 1.5's / SDXL base's UNet and
    the cross-attention layers per map level (SDXL: transformer depths 2 and 10)."""
    with torch.device("meta"):
        unet = build_unet(name)
    assert sum(p.numel() for p in unet.parameters()) == params
    levels = attention_levels(unet)
    assert {lv: list(levels.values()).count(lv) for lv in set(levels.values())} == counts


def test_flop_count_of_the_loss_pass_on_the_meta_device():
    from astar_ext.bench.flops import count_flops, estimate, main

    f = count_flops("tiny", 128, 128)
    assert f["layers"] == 5 and f["plain_step"] > 0
    assert 0 < f["forward"] < f["forward_no_exit"] < f["plain_step"]
    assert 0 < f["backward"] < f["backward_checkpoint"]
    e = estimate(f, steps=8, window=0.5)
    assert e["optimised_steps"] == 4
    assert 1.0 < e["default"] < e["no_early_exit"] and e["default"] < e["checkpoint_blocks"]
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        assert main(["--config", "tiny", "--size", "128x128", "--steps", "8"]) == 0
    assert "compute-bound estimate" in out.getvalue() and "backward with checkpoint_blocks" in out.getvalue()
    # image/16: the tiny SD 1.x layout's five level-1 layers; the last (output_blocks.8) comes after image/32's last
    # (output_blocks.5), so the early exit leaves less of the UNet out
    fine = count_flops("tiny", 128, 128, level=1)
    assert fine["layers"] == 5 and fine["maps"] == "image/16" and f["maps"] == "image/32"
    assert f["forward"] < fine["forward"] < fine["forward_no_exit"]
