"""The diffusion inverter: network (unet), the per-photo heads (heads), the EDM
wrapper (denoiser) and their configuration (config).

Nothing here reads photos, RAW files or weights files, and nothing knows a camera profile: tensors
in, tensors out. rawback.features makes the inputs, rawback.weights reads and writes the files,
rawback.inference runs the model on a photo.
"""
