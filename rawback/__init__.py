"""rawback: turn JPEG photos back into camera RAW files (DNG)."""

__version__ = "0.1.0"
