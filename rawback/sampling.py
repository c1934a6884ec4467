"""Noise schedules and stateless samplers, chosen by name.

The model is NVlabs/edm and k-diffusion: a *denoiser* is any callable `denoise(x, sigma) -> x0`
returning the estimate of the clean image at noise level sigma. Conditioning (the JPEG prior) is
bound by the caller, usually in a closure, so samplers never see it; a tiled denoiser
(rawback.tiling.TiledDenoiser) looks like any other denoiser to them.

Every sampler has one signature, `sample_xxx(denoise, x, sigmas, *, callback=None) -> x0`, where
`x` is the initial state already scaled to `sigmas[0]` (noise * sigmas[0]) and `sigmas` is a
descending schedule that normally ends in 0 (see `karras_sigmas`). Samplers keep no state between
calls and draw no random numbers: given `x` they are deterministic. The sampler state is float64
whatever precision the denoiser computes in (EDM does the same), and `sigma` reaches the denoiser as
a 0-d float64 CPU tensor.

A step count never switches the algorithm: "one-step" is its own sampler, asked for by name.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import torch
from torch import Tensor

from rawback.choices import Sampler as SamplerName

Denoiser = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[dict[str, Any]], None]


class Sampler(Protocol):
    def __call__(
        self, denoise: Denoiser, x: Tensor, sigmas: Tensor, *, callback: Callback | None = None
    ) -> Tensor: ...


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """The EDM noise schedule (Karras et al. 2022, eq. 5), with a final 0 appended.

    Parameters:
        steps: number of sampler steps, >= 1; the schedule has steps + 1 entries.
        sigma_min, sigma_max: first and last nonzero noise level, 0 < sigma_min <= sigma_max.
            With steps == 1 only sigma_max is used: the schedule is [sigma_max, 0].
        rho: curvature; larger spends more steps at low noise (EDM uses 7).

    Returns a descending float64 tensor whose last entry is exactly 0.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    # eq. 5: sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho.
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)  # steps == 1 gives [0] -> sigma_max
    max_inv_rho = sigma_max ** (1 / rho)
    min_inv_rho = sigma_min ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    # Pin the endpoints: the power round trip is not exact in floating point.
    sigmas[0] = sigma_max
    if steps > 1:
        sigmas[-1] = sigma_min
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def initial_noise(shape: Sequence[int], seed: int) -> Tensor:
    """Standard normal float64 noise from a CPU generator of its own, seeded with `seed`.

    Drawing on the CPU from a private generator makes the result independent of the device, of the
    global RNG state and of whatever else is in the batch. Scale by sigmas[0] before sampling.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float64)


Noise = Callable[[Sequence[int], int], Tensor]  # (shape, seed) -> initial_noise(shape, seed)


class NoiseDrawnAhead:
    """`initial_noise` for one photo, its first draw started in a worker thread ahead of need.

    torch's CPU generator draws one value after another: a 24 MP photo's noise (24 M float64) takes
    0.67 s of one core (2-core EPYC), time in which the caller makes the analytic prior and the
    network's condition, and on a GPU the time in which the GPU would wait. The thread changes when
    the noise is drawn, never what: every call returns exactly `initial_noise(shape, seed)`.
    """

    def __init__(self, shape: Sequence[int], seed: int) -> None:
        self._first = (tuple(shape), seed)
        self._drawn = _noise_threads().submit(initial_noise, tuple(shape), seed)

    def __call__(self, shape: Sequence[int], seed: int) -> Tensor:
        if (tuple(shape), seed) == self._first:
            return self._drawn.result()
        return initial_noise(shape, seed)


@functools.cache
def _noise_threads() -> ThreadPoolExecutor:
    # One per photo a pipelined batch has in flight on a GPU (rawback.choices.IN_FLIGHT); more wait.
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="rawback-noise")


# A forked child (a data-loader worker) has none of the parent's threads: it makes its own pool.
os.register_at_fork(after_in_child=_noise_threads.cache_clear)


def _prepare(x: Tensor, sigmas: Tensor) -> tuple[Tensor, Tensor]:
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64).cpu()
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(
            f"sigmas must be a 1-d schedule of at least 2 entries, got shape {tuple(sigmas.shape)}"
        )
    return x.to(torch.float64), sigmas


def _denoised(denoise: Denoiser, x: Tensor, sigma: Tensor) -> Tensor:
    # The denoiser may compute in reduced precision; the sampler's arithmetic stays float64.
    return denoise(x, sigma).to(device=x.device, dtype=torch.float64)


def _report(callback: Callback | None, i: int, sigmas: Tensor, x: Tensor, denoised: Tensor) -> None:
    if callback is not None:
        callback({"i": i, "sigma": sigmas[i], "sigma_next": sigmas[i + 1], "x": x, "denoised": denoised})


def sample_euler(denoise: Denoiser, x: Tensor, sigmas: Tensor, *, callback: Callback | None = None) -> Tensor:
    """First-order probability-flow ODE solver: EDM Algorithm 2 without the correction."""
    x, sigmas = _prepare(x, sigmas)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        # Evaluate dx/dsigma at sigma_i (Algorithm 2, line 7).
        denoised = _denoised(denoise, x, sigmas[i])
        d = (x - denoised) / sigma
        # Euler step (line 8).
        x = x + (sigma_next - sigma) * d
        _report(callback, i, sigmas, x, denoised)
    return x


def sample_heun(denoise: Denoiser, x: Tensor, sigmas: Tensor, *, callback: Callback | None = None) -> Tensor:
    """Heun's second-order method, EDM Algorithm 2 (deterministic: S_churn = 0).

    The correction needs dx/dsigma at sigma_next, undefined at 0, so the last step to sigma = 0 is a
    plain Euler step: 2 * steps - 1 denoiser calls for a schedule ending in 0.
    """
    x, sigmas = _prepare(x, sigmas)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        # Evaluate dx/dsigma at sigma_i (line 7).
        denoised = _denoised(denoise, x, sigmas[i])
        d = (x - denoised) / sigma
        # Euler step (line 8).
        x_next = x + (sigma_next - sigma) * d
        # Apply 2nd order correction (lines 9-11), except on the step to sigma = 0.
        if sigma_next != 0:
            d_next = (x_next - _denoised(denoise, x_next, sigmas[i + 1])) / sigma_next
            x_next = x + (sigma_next - sigma) * (0.5 * d + 0.5 * d_next)
        x = x_next
        _report(callback, i, sigmas, x, denoised)
    return x


def sample_dpmpp_2m(
    denoise: Denoiser, x: Tensor, sigmas: Tensor, *, callback: Callback | None = None
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), as k-diffusion's `sample_dpmpp_2m`.

    A multistep solver in lambda = -log(sigma): one denoiser call per step, second order from the
    previous step's x0 estimate. The first step, and the step to sigma = 0, are first order.
    """
    x, sigmas = _prepare(x, sigmas)
    old_denoised: Tensor | None = None
    h_last = 0.0
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = _denoised(denoise, x, sigmas[i])
        if sigma_next == 0:
            # The limit h -> inf of the update below: x jumps to the x0 estimate (k-diffusion takes
            # this limit numerically through log(0) = -inf; here it is written out).
            x = denoised
        else:
            # Step size in log-SNR time: h = lambda_{i+1} - lambda_i, lambda = -log(sigma).
            h = math.log(sigma / sigma_next)
            if old_denoised is None:
                denoised_d = denoised  # first step: DPM-Solver++(1), i.e. DDIM
            else:
                # Second-order multistep correction with r = h_{i-1} / h_i.
                r = h_last / h
                denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            # x_{i+1} = sigma_{i+1}/sigma_i x_i - (e^{-h} - 1) D.
            x = (sigma_next / sigma) * x - math.expm1(-h) * denoised_d
            h_last = h
        old_denoised = denoised
        _report(callback, i, sigmas, x, denoised)
    return x


def sample_one_step(
    denoise: Denoiser, x: Tensor, sigmas: Tensor, *, callback: Callback | None = None
) -> Tensor:
    """The denoiser's MMSE estimate at sigmas[0], in one call; the rest of the schedule is ignored.

    This is the posterior mean, not a sample: smooth where the posterior is uncertain, but fast and
    the best in mean squared error.
    """
    x, sigmas = _prepare(x, sigmas)
    denoised = _denoised(denoise, x, sigmas[0])
    _report(callback, 0, sigmas, denoised, denoised)
    return denoised


SAMPLERS: dict[str, Sampler] = {
    SamplerName.EULER: sample_euler,
    SamplerName.HEUN: sample_heun,
    SamplerName.DPMPP_2M: sample_dpmpp_2m,
    SamplerName.ONE_STEP: sample_one_step,
}


def get_sampler(name: str) -> Sampler:
    try:
        return SAMPLERS[name]
    except KeyError:
        known = ", ".join(SAMPLERS)
        raise ValueError(f"unknown sampler {name!r}; available: {known}") from None


def network_evaluations(name: str, steps: int) -> int:
    """Denoiser calls that sampler `name` makes on a `steps`-step schedule ending in 0.

    For benchmarks that report throughput per network evaluation.
    """
    get_sampler(name)  # the same error for a bad name
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if name == SamplerName.HEUN:
        return 2 * steps - 1  # no correction on the last step, to sigma = 0
    if name == SamplerName.ONE_STEP:
        return 1
    return steps
