"""The diffusion inverter: network (unet), global illuminant head, EDM wrapper, weights files.

Nothing here reads photos or RAW files: tensors in, tensors out (see rawback.inference for the
bridge from an InverseRequest).
"""
