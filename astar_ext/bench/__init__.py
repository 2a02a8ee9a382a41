"""Speed and memory measurement of the engine, host-free (nothing here is imported by the engine or an adapter).

* :mod:`.speed` — the speed benchmark (``python -m astar_ext.bench``): plain and A-STAR generations interleaved in
  one process through the same path as the WebUI (a real k-diffusion sampler, the CFG denoiser stand-in of
  :mod:`.host`, the engine's :class:`~astar_ext.passrun.PassRun`), printing ratios;
* :mod:`.host` — a stand-in of the WebUI 1.10.1 pieces the benchmark drives (CFG denoiser, sampler, tokenizer);
* :mod:`.models` — the benchmark's model configurations (tiny, and full-size SD 1.5 / SDXL UNets with random weights);
* :mod:`.flops` — FLOP count of a plain step and of the loss pass on the meta device
  (``python -m astar_ext.bench.flops``);
* :mod:`.layers` — cost and signal of each image/32 layer choice (``python -m astar_ext.bench.layers``);
* :mod:`.tiny` — the tiny ldm ``UNetModel`` configurations (SD 1.x, SDXL, SSD-1B layouts) the tests and the
  benchmark run on the CPU.
"""
