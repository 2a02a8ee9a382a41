"""Which sampling steps are optimised, and how far the latent moves at each.

* Window: the first ``round(window * steps)`` steps (at least one when ``window > 0``). The step
  index counts the steps of the run being corrected: in img2img and on the hires pass the first
  denoising step is index 0, so the window starts where denoising starts.
* Step size: Attend-and-Excite's ramp ``alpha_i = scale * sqrt(s_i)``, ``s = linspace(1.0, 0.5,
  steps)``, indexed by the step (``algorithm.md`` §4.2; A-STAR prints none). It is a step in the
  variance-preserving latent ``z`` that the UNet sees.
* Sigma space: k-diffusion samplers hold ``x = z * sqrt(1 + sigma^2)`` and feed the UNet
  ``c_in * x = z``. Then ``grad_x L = grad_z L / sqrt(1 + sigma^2)``, and the A&E step
  ``dz = -alpha grad_z L`` is ``dx = -alpha (1 + sigma^2) grad_x L`` (§4.4). Samplers that hold
  ``z`` itself (the WebUI's DDIM and PLMS, where "sigma" is the timestep) use a factor of 1.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The optimisation schedule of one sampling run of ``steps`` steps."""

    steps: int
    window: float = 0.5
    scale: float = 20.0
    iterations: int = 1
    scale_range: tuple[float, float] = (1.0, 0.5)

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError("steps must be >= 0")
        if not 0.0 <= self.window <= 1.0:
            raise ValueError("window must be in [0, 1]")
        if self.iterations < 1:
            raise ValueError("iterations must be >= 1")

    @property
    def optimised_steps(self) -> int:
        """How many steps, from the first, are optimised."""
        if self.window <= 0 or self.steps == 0:
            return 0
        return min(self.steps, max(1, math.floor(self.window * self.steps + 0.5)))

    def in_window(self, step: int) -> bool:
        return 0 <= step < self.optimised_steps

    def ramp(self, step: int) -> float:
        """``s_step`` of ``linspace(scale_range[0], scale_range[1], steps)``."""
        a, b = self.scale_range
        if self.steps <= 1:
            return a
        step = min(max(step, 0), self.steps - 1)
        return a + (b - a) * step / (self.steps - 1)

    def step_size(self, step: int) -> float:
        """A&E's ``alpha_step = scale * sqrt(s_step)`` (a step in the UNet's input space)."""
        return self.scale * math.sqrt(self.ramp(step))


def sigma_space_factor(sigma: float) -> float:
    """Factor that turns an A&E step on ``z`` into the same step on k-diffusion's ``x``: ``1 + sigma^2``."""
    return 1.0 + float(sigma) ** 2
