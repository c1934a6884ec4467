"""Schedules and samplers against an analytic denoiser with a known answer.

If every element of the data is N(mu, s^2), the noisy x = x0 + sigma n has the exact MMSE denoiser
D(x, sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu), and the probability-flow ODE from x_T at
sigma_max ends exactly at x0 = mu + s / sqrt(s^2 + sigma_max^2) (x_T - mu).
"""

from __future__ import annotations

import math

import pytest
import torch

from rawback.sampling import (
    SAMPLERS,
    get_sampler,
    initial_noise,
    karras_sigmas,
    network_evaluations,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
    sample_one_step,
)

MU, S = 0.3, 0.5
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return MU + S**2 / (S**2 + sigma**2) * (x - MU)


def ode_solution(x_t: torch.Tensor, sigma_max: float) -> torch.Tensor:
    return MU + S / math.sqrt(S**2 + sigma_max**2) * (x_t - MU)


def start(seed: int = 0, shape: tuple[int, ...] = (2, 4, 8, 8)) -> torch.Tensor:
    return initial_noise(shape, seed) * SIGMA_MAX


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# --- schedule -------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2, 5, 32])
def test_karras_sigmas_shape_endpoints_monotone(steps):
    sigmas = karras_sigmas(steps, SIGMA_MIN, SIGMA_MAX)
    assert sigmas.dtype == torch.float64
    assert sigmas.shape == (steps + 1,)
    assert sigmas[0] == SIGMA_MAX
    assert sigmas[-1] == 0
    if steps > 1:
        assert sigmas[-2] == SIGMA_MIN
    assert bool((sigmas[1:] < sigmas[:-1]).all())


def test_karras_sigmas_one_step_is_sigma_max_then_zero():
    assert karras_sigmas(1, SIGMA_MIN, SIGMA_MAX).tolist() == [SIGMA_MAX, 0.0]


def test_karras_sigmas_matches_eq5():
    steps, rho = 4, 7.0
    expected = [
        (SIGMA_MAX ** (1 / rho) + i / (steps - 1) * (SIGMA_MIN ** (1 / rho) - SIGMA_MAX ** (1 / rho))) ** rho
        for i in range(steps)
    ] + [0.0]
    assert karras_sigmas(steps, SIGMA_MIN, SIGMA_MAX, rho).tolist() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("steps", "lo", "hi"), [(0, 0.1, 1.0), (3, 0.0, 1.0), (3, 2.0, 1.0)])
def test_karras_sigmas_rejects_bad_arguments(steps, lo, hi):
    with pytest.raises(ValueError):
        karras_sigmas(steps, lo, hi)


# --- samplers against the analytic denoiser -------------------------------------------------------


@pytest.mark.parametrize("sampler", [sample_heun, sample_dpmpp_2m])
def test_second_order_samplers_solve_the_ode(sampler):
    x_t = start()
    exact = ode_solution(x_t, SIGMA_MAX)
    errors = [
        rel_error(sampler(gaussian_denoiser, x_t, karras_sigmas(n, SIGMA_MIN, SIGMA_MAX)), exact)
        for n in (32, 64, 128)
    ]
    # Second order: doubling the steps divides the error by about 4 (measured 1.5e-2, 3.5e-3, 8e-4).
    assert errors[0] < 2e-2
    assert errors[0] / errors[1] > 3.5 and errors[1] / errors[2] > 3.5
    assert errors[2] < 1e-3


def test_euler_is_first_order_and_heun_beats_it():
    x_t = start()
    exact = ode_solution(x_t, SIGMA_MAX)
    euler = [
        rel_error(sample_euler(gaussian_denoiser, x_t, karras_sigmas(n, SIGMA_MIN, SIGMA_MAX)), exact)
        for n in (32, 64)
    ]
    heun = rel_error(sample_heun(gaussian_denoiser, x_t, karras_sigmas(32, SIGMA_MIN, SIGMA_MAX)), exact)
    assert 1.8 < euler[0] / euler[1] < 2.2
    assert heun < euler[0] / 4  # measured 1.4e-2 against 8e-2


def test_one_step_is_the_mmse_estimate():
    x_t = start()
    out = sample_one_step(gaussian_denoiser, x_t, karras_sigmas(10, SIGMA_MIN, SIGMA_MAX))
    assert torch.equal(out, gaussian_denoiser(x_t, torch.tensor(SIGMA_MAX, dtype=torch.float64)))


def test_float32_denoiser_keeps_float64_state():
    def low_precision(x, sigma):
        return gaussian_denoiser(x.float(), sigma.float())

    x_t = start()
    sigmas = karras_sigmas(32, SIGMA_MIN, SIGMA_MAX)
    out = sample_heun(low_precision, x_t, sigmas)
    assert out.dtype == torch.float64
    # float32 rounding in D, not in the state: as close to the float64 run as float32 allows.
    assert rel_error(out, sample_heun(gaussian_denoiser, x_t, sigmas)) < 1e-5


def test_samplers_pass_sigma_as_0d_float64_and_report_each_step():
    seen = []

    def denoise(x, sigma):
        assert sigma.ndim == 0 and sigma.dtype == torch.float64
        assert x.dtype == torch.float64
        return gaussian_denoiser(x, sigma)

    sigmas = karras_sigmas(5, SIGMA_MIN, SIGMA_MAX)
    for name, sampler in SAMPLERS.items():
        seen.clear()
        out = sampler(denoise, start(), sigmas, callback=seen.append)
        assert [info["i"] for info in seen] == ([0] if name == "one-step" else list(range(5)))
        assert set(seen[-1]) == {"i", "sigma", "sigma_next", "x", "denoised"}
        assert torch.equal(seen[-1]["x"], out)


# --- determinism and bookkeeping ------------------------------------------------------------------


def test_initial_noise_depends_only_on_the_seed():
    a = initial_noise((3, 5), seed=7)
    torch.manual_seed(123)  # the global RNG must not matter
    torch.randn(10)
    b = initial_noise((3, 5), seed=7)
    assert a.dtype == torch.float64
    assert torch.equal(a, b)
    assert not torch.equal(a, initial_noise((3, 5), seed=8))


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_same_seed_is_bit_identical(name):
    sampler = get_sampler(name)
    sigmas = karras_sigmas(6, SIGMA_MIN, SIGMA_MAX)
    assert torch.equal(
        sampler(gaussian_denoiser, start(3), sigmas), sampler(gaussian_denoiser, start(3), sigmas)
    )


def test_get_sampler_names_the_bad_value_and_the_choices():
    with pytest.raises(ValueError, match="'ddim'") as info:
        get_sampler("ddim")
    for name in ("euler", "heun", "dpmpp-2m", "one-step"):
        assert name in str(info.value)


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_network_evaluations_counts_denoiser_calls(name, steps):
    calls = 0

    def counting(x, sigma):
        nonlocal calls
        calls += 1
        return gaussian_denoiser(x, sigma)

    get_sampler(name)(counting, start(shape=(1, 1, 2, 2)), karras_sigmas(steps, SIGMA_MIN, SIGMA_MAX))
    assert calls == network_evaluations(name, steps)


def test_noise_drawn_ahead_is_the_noise_and_works_in_a_forked_child() -> None:
    import multiprocessing

    from rawback.sampling import NoiseDrawnAhead

    ahead = NoiseDrawnAhead((2, 4, 6, 5), 11)
    assert torch.equal(ahead((2, 4, 6, 5), 11), initial_noise((2, 4, 6, 5), 11))
    assert torch.equal(ahead((2, 4, 6, 5), 12), initial_noise((2, 4, 6, 5), 12))  # not the one ahead
    # A child forked after the pool's threads exist must not wait on threads it does not have.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        drawn = pool.apply_async(_draw_ahead_in_child).get(timeout=60)
    assert torch.equal(drawn, initial_noise((3, 3), 5))


def _draw_ahead_in_child() -> torch.Tensor:
    from rawback.sampling import NoiseDrawnAhead

    return NoiseDrawnAhead((3, 3), 5)((3, 3), 5)
