"""Inversion methods by name: what turns an sRGB photo into a normalised mosaic.

A method is a plain function with one signature, so `convert`, `batch` and `eval` can swap them
by name. "analytic" is the Brooks et al. inverse (rawback.isp.unprocess).
"""

from __future__ import annotations

from rawback.choices import Method as MethodName
from rawback.diffusion_settings import DiffusionSettings
from rawback.finish import measured_finish_note, unprocess_with_finish
from rawback.inverse import InverseRequest, InverseResult, Method, estimate_neutral


def analytic(request: InverseRequest) -> InverseResult:
    estimate = estimate_neutral(request)
    neutral, note = estimate.neutral, estimate.note
    mosaic, finish = unprocess_with_finish(
        request.rgb, request.profile, neutral, request.settings, request.bit_depth
    )
    notes = (note,) if finish is None else (note, measured_finish_note(request.profile))
    return InverseResult(
        mosaic=mosaic,
        neutral=neutral,
        notes=notes,
        neutral_source=estimate.source,
        tone_curve_undone=finish is not None,
    )


def diffusion(request: InverseRequest) -> InverseResult:
    """The learned inverter (rawback.inference); torch is imported only when it runs."""
    from rawback.inference import invert_with_model

    return invert_with_model(request)


def invisp(request: InverseRequest) -> InverseResult:
    """The Invertible-ISP flow run backwards (rawback.invisp_inference); torch is imported only
    when it runs."""
    from rawback.invisp_inference import invert_with_flow

    return invert_with_flow(request)


def latent(request: InverseRequest) -> InverseResult:
    """Diffusion in the latent space of tiny autoencoders (rawback.latent_inference, docs/latent.md)."""
    from rawback.latent_inference import invert_with_latent

    return invert_with_latent(request)


METHODS: dict[str, Method] = {
    MethodName.ANALYTIC: analytic,
    MethodName.DIFFUSION: diffusion,
    MethodName.INVISP: invisp,
    MethodName.LATENT: latent,
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        known = ", ".join(sorted(METHODS))
        raise ValueError(f"unknown method {name!r}; available: {known}") from None


# The learned methods besides diffusion: `eval` loads and records their weights by name.
OTHER_LEARNED = (MethodName.INVISP, MethodName.LATENT)


def load_method_weights(method: str, settings: DiffusionSettings) -> str:
    """Load an OTHER_LEARNED method's weights (`settings.weights`, else its bundled file) once, so
    that bad weights fail before any photo is inverted; returns the path loaded."""
    if method == MethodName.INVISP:
        from rawback.invisp_inference import cached_flow
        from rawback.invisp_weights import bundled_invisp

        path = str(settings.weights or bundled_invisp())
        cached_flow(path)
        return path
    if method == MethodName.LATENT:
        from rawback.latent_inference import latent_model_for
        from rawback.latent_weights import bundled_latent_weights

        latent_model_for(settings)
        return str(settings.weights or bundled_latent_weights())
    raise ValueError(f"{method!r} is not one of {', '.join(OTHER_LEARNED)}")
