"""Whether a JPEG's compressed data is whole.

libjpeg meets damage (a file cut short, a flipped bit that breaks a Huffman code, stray bytes
between markers) with a warning and decodes on, filling what it could not read with grey. Pillow
and imagecodecs drop those warnings, so a damaged photo would become a DNG without a word. The
same libjpeg-turbo, through simplejpeg's strict mode, raises them instead; decoding a 12 MP JPEG
a second time for this costs about 0.06 s.
"""

from __future__ import annotations

# libjpeg's warnings about the compressed data (jerror.h: JWRN_EXTRANEOUS_DATA, JWRN_HIT_MARKER,
# JWRN_HUFF_BAD_CODE, JWRN_ARITH_BAD_CODE, JWRN_MUST_RESYNC start with the first; JWRN_JPEG_EOF is
# the second). Its other warnings (an unknown JFIF revision, an Adobe transform code) are about
# headers that decode fine, and formats libjpeg-turbo's 8-bit decoder does not read (12-bit,
# lossless) raise errors that say nothing about damage: neither is reported.
DAMAGE_WARNINGS = ("Corrupt JPEG data", "Premature end of JPEG file")


def jpeg_damage(data: bytes) -> str | None:
    """libjpeg's own words about damaged compressed data in a JPEG file, None if it decodes cleanly
    (or cannot be checked)."""
    import simplejpeg

    try:
        # At 1/8 scale: every code is still read (damage is found in the compressed data), but
        # the pixels take 1/64 of the memory, 9 MB instead of 600 for a 200 MP photo.
        simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=1, min_width=1, min_factor=8, strict=True)
    except (ValueError, RuntimeError) as exc:
        message = str(exc).strip()
        if message.startswith(DAMAGE_WARNINGS):
            return message
    return None


def damage_warning(message: str) -> str:
    """The warning a user sees for `jpeg_damage`'s message."""
    return f"the JPEG data is damaged (libjpeg: {message}); parts of the photo may be grey or garbled"
