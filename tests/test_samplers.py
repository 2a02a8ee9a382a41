"""Call plans against the real k-diffusion samplers: every main call is found, and only main calls."""

from __future__ import annotations

import k_diffusion as K
import pytest
import torch

from astar_ext.samplers import REFUSED, CallPlan, function_name, plan_for

K_SAMPLERS = [
    "sample_euler", "sample_euler_ancestral", "sample_lms", "sample_dpmpp_2m", "sample_dpmpp_2m_sde",
    "sample_dpmpp_3m_sde", "sample_heun", "sample_dpm_2", "sample_dpm_2_ancestral", "sample_dpmpp_sde",
    "sample_dpmpp_2s_ancestral",
]


class Recorder(torch.nn.Module):
    """A denoiser that records what each call receives."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, sigma):
        self.calls.append((x, float(sigma[0])))
        return x * 0.8


@pytest.mark.parametrize("name", K_SAMPLERS)
def test_plan_finds_each_step_once_with_its_scheduled_sigma(name):
    plan = plan_for(getattr(K.sampling, name))
    assert isinstance(plan, CallPlan) and plan.sigma_space
    steps = 6
    sigmas = K.sampling.get_sigmas_karras(steps, 0.03, 14.6)
    model = Recorder()
    seen = []

    def callback(d):
        seen.append((len(model.calls), d["x"]))

    torch.manual_seed(0)
    getattr(K.sampling, name)(model, torch.randn(1, 4, 8, 8) * sigmas[0], sigmas, callback=callback, disable=True)
    mains = {}
    for call, (_x, sigma) in enumerate(model.calls):
        step = plan.step_of(call, plan.steps(sigmas))
        if step is not None:
            assert step not in mains
            mains[step] = call
            assert plan.matches(sigmas.tolist(), step, sigma)
    assert sorted(mains) == list(range(steps))
    # the main call of step i receives the very tensor the sampler holds at step i (the one its
    # callback reports), so an in-place change there is a change of the sampler's latent
    for i in range(steps):
        assert model.calls[mains[i]][0] is seen[i][1]
    # second-order samplers: the callback fires between the two calls of a step
    offset = 1 if plan.family == "second" else 0
    assert [mains[i] for i in range(1, steps)] == [n + offset for n, _ in seen[:-1]]
    # every other call is an intermediate evaluation of the same step (second-order samplers)
    assert len(model.calls) == steps + (steps - 1) * (plan.family == "second")


def test_refused_and_unknown():
    for name in REFUSED:
        assert isinstance(plan_for(name), str)
    assert "not known" in plan_for("sample_something_new")
    assert "UniPC" in plan_for("unipc")


def test_timestep_plans():
    ddim = plan_for("ddim")
    plms = plan_for("plms")
    assert not ddim.sigma_space and ddim.schedule_key == "timesteps"
    timesteps = [1, 51, 101, 151, 201]
    assert ddim.steps(timesteps) == 4
    assert [ddim.step_of(c, 4) for c in range(5)] == [0, 1, 2, 3, None]
    assert ddim.expected(timesteps, 0) == 201 and ddim.expected(timesteps, 3) == 51
    assert [plms.step_of(c, 4) for c in range(6)] == [0, None, 1, 2, 3, None]


def test_churn_raises_sigma_only_where_allowed():
    euler, lms = plan_for("sample_euler"), plan_for("sample_lms")
    assert euler.matches([10.0, 5.0, 0.0], 0, 10.5)
    assert not lms.matches([10.0, 5.0, 0.0], 0, 10.5)
    assert not euler.matches([10.0, 5.0, 0.0], 0, 9.0)


def test_function_name_follows_wrappers():
    import functools

    def sample_euler():
        pass

    @functools.wraps(sample_euler)
    def wrapper():
        pass

    assert function_name(wrapper) == "sample_euler"
    assert function_name("sample_lms") == "sample_lms"
