"""Which denoiser call is the main call of which step, for each sampler of WebUI 1.10.1 and WebUI Forge.

A-STAR corrects the sampler's own latent in a forward pre-hook on the CFG denoiser. That latent
is the first argument of the denoiser only on the *main* call of a step (the one whose result the
sampler integrates from the latent it holds); second-order samplers make a second call on an
intermediate tensor, PLMS makes two calls in its first step (``webui-host.md`` §3.3). The step
is identified from the denoiser's call counter (``CFGDenoiser.step``, reset when sampling starts)
and the sampler family, then checked against the sampler's own schedule (``sigmas`` or
``timesteps``, captured by wrapping ``sampler.func``). Never from ``shared.state.sampling_step``.

This module imports nothing from the WebUI: it is keyed by the sampler functions' names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

# k-diffusion (and LCM) samplers that call the denoiser once per step, always on the latent they hold.
# WebUI Forge adds IPNDM, IPNDM_V and DEIS (its vendored k_diffusion/sampling.py: one call per step on
# ``x_cur``, from which ``x_next`` is computed) and DDPM (backend/modules/k_diffusion_extra.py,
# ``generic_step_sampler``: one call per step on ``x``, the next ``x`` computed from it).
FIRST_ORDER = {
    "sample_euler", "sample_euler_ancestral", "sample_lms", "sample_dpmpp_2m", "sample_dpmpp_2m_sde",
    "sample_dpmpp_3m_sde", "sample_lcm", "sample_ipndm", "sample_ipndm_v", "sample_deis", "sample_ddpm",
}
# k-diffusion samplers whose step i calls the denoiser on x (main), then on an intermediate point,
# except the last step (sigma_{i+1} = 0), which makes only the main call
SECOND_ORDER = {
    "sample_heun", "sample_dpm_2", "sample_dpm_2_ancestral", "sample_dpmpp_sde", "sample_dpmpp_2s_ancestral",
}
# samplers whose sigma may be raised above the schedule on the main call (s_churn)
CHURN = {"sample_euler", "sample_heun", "sample_dpm_2"}
# the WebUI's timestep samplers: the latent is the UNet input itself, "sigma" is the timestep
TIMESTEP_FIRST_ORDER = {"ddim", "ddim_cfgpp"}
TIMESTEP_PLMS = {"plms"}

REFUSED = {
    "unipc": "UniPC is not supported: its corrector recomputes the latent from values taken before "
             "the correction, so an in-place change does not persist",
    "restart_sampler": "Restart is not supported: its restarts revisit noise levels in an irregular "
                       "pattern of denoiser calls",
    "sample_dpm_fast": "DPM fast is not supported: it evaluates the denoiser a varying number of times per step",
    "sample_dpm_adaptive": "DPM adaptive is not supported: its steps are chosen at run time",
    "sample_heunpp2": "HeunPP2 is not supported: it evaluates the denoiser one, two or three times per step",
}


def function_name(func: Any) -> str:
    """The name of a sampler function (a name string in KDiffusionSampler.funcname, or a callable)."""
    if isinstance(func, str):
        return func
    func = getattr(func, "__wrapped__", func)
    return getattr(func, "__name__", type(func).__name__)


@dataclasses.dataclass(frozen=True)
class CallPlan:
    """How one sampler's denoiser calls map to steps.

    Attributes:
        name: the sampler function's name.
        family: ``"first"``, ``"second"`` or ``"plms"``.
        sigma_space: True for k-diffusion samplers (latent ``x = z sqrt(1 + sigma^2)``), False for
            the timestep samplers (DDIM, PLMS), whose latent is the UNet input.
    """

    name: str
    family: str
    sigma_space: bool

    @property
    def schedule_key(self) -> str:
        """The keyword argument of the sampler function that holds its schedule."""
        return "sigmas" if self.sigma_space else "timesteps"

    def steps(self, schedule: Sequence[float]) -> int:
        """The number of steps (main calls) of a run over ``schedule`` (``len - 1`` for all families:
        k-diffusion's sigmas end with 0; the WebUI's DDIM and PLMS loop ``len(timesteps) - 1`` times)."""
        return max(0, len(schedule) - 1)

    def step_of(self, call: int, steps: int) -> int | None:
        """The step whose main call is denoiser call number ``call`` (0-based), or None."""
        if call < 0:
            return None
        if self.family == "first":
            step = call
        elif self.family == "second":
            if call % 2:
                return None
            step = call // 2
        else:  # plms: call 1 is the second evaluation of the first step
            if call == 1:
                return None
            step = 0 if call == 0 else call - 1
        return step if step < steps else None

    def expected(self, schedule: Sequence[float], step: int) -> float:
        """The noise level (k-diffusion) or timestep (DDIM/PLMS) the main call of ``step`` receives."""
        if self.sigma_space:
            return float(schedule[step])
        return float(schedule[len(schedule) - 1 - step])

    def matches(self, schedule: Sequence[float], step: int, received: float) -> bool:
        """Does the value a call received agree with the schedule for ``step``?"""
        want = self.expected(schedule, step)
        tol = 1e-4 * max(1.0, abs(want))
        if abs(received - want) <= tol:
            return True
        return self.name in CHURN and received > want  # sigma_hat = sigma * (1 + gamma)


def plan_for(func: Any) -> CallPlan | str:
    """The :class:`CallPlan` of a sampler function, or the reason it is refused."""
    name = function_name(func)
    if name in REFUSED:
        return REFUSED[name]
    if name in FIRST_ORDER:
        return CallPlan(name, "first", True)
    if name in SECOND_ORDER:
        return CallPlan(name, "second", True)
    if name in TIMESTEP_FIRST_ORDER:
        return CallPlan(name, "first", False)
    if name in TIMESTEP_PLMS:
        return CallPlan(name, "plms", False)
    return f"the sampler function {name!r} is not known to A-STAR, so its steps cannot be identified"
