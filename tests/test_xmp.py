"""The photographer's XMP reaches the DNG; the JPEG's develop settings and history do not."""

from __future__ import annotations

from pathlib import Path

import piexif
from PIL import Image

from rawback.io.xmp import descriptive_xmp

LIGHTROOM_EXPORT = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
   xmp:Rating="4" xmp:CreatorTool="Adobe Photoshop Lightroom Classic 13.0"
   crs:Exposure2012="+0.35" crs:ToneCurveName2012="Medium Contrast"
   photoshop:City="Lausanne" photoshop:ColorMode="3">
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Lac Léman at dusk</rdf:li></rdf:Alt></dc:title>
   <dc:subject><rdf:Bag><rdf:li>lake</rdf:li><rdf:li>dusk</rdf:li></rdf:Bag></dc:subject>
   <crs:ToneCurvePV2012><rdf:Seq><rdf:li>0, 0</rdf:li><rdf:li>255, 255</rdf:li></rdf:Seq>
   </crs:ToneCurvePV2012>
   <xmpMM:History><rdf:Seq><rdf:li>exported</rdf:li></rdf:Seq></xmpMM:History>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


def test_the_develop_settings_and_history_are_dropped_the_description_kept() -> None:
    kept = descriptive_xmp(LIGHTROOM_EXPORT).decode()
    for wanted in (
        'xmp:Rating="4"',
        'photoshop:City="Lausanne"',
        "Lac Léman at dusk",
        "<rdf:li>lake</rdf:li>",
    ):
        assert wanted in kept
    for dropped in ("crs:", "camera-raw-settings", "CreatorTool", "ColorMode", "History", "xmpMM"):
        assert dropped not in kept
    assert kept.startswith("<?xpacket begin=") and kept.endswith('<?xpacket end="w"?>')


def test_a_packet_with_nothing_descriptive_or_unreadable_is_not_carried() -> None:
    only_develop = LIGHTROOM_EXPORT.replace(b'xmp:Rating="4"', b"").replace(b'photoshop:City="Lausanne"', b"")
    only_develop = only_develop.split(b"<dc:title>")[0] + only_develop.split(b"</dc:subject>")[1]
    assert descriptive_xmp(only_develop) is None
    assert descriptive_xmp(b"<x:xmpmeta><rdf:RDF>not xml") is None
    entities = b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + LIGHTROOM_EXPORT
    assert descriptive_xmp(entities) is None  # no entity expansion from a photo's metadata
    assert descriptive_xmp(None) is None


def test_the_photographers_xmp_reaches_the_dng(tmp_path: Path) -> None:
    import tifffile

    from rawback.convert import ConvertOptions, convert_file

    photo = tmp_path / "photo.jpg"
    exif = piexif.dump(
        {"0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Model: b"Canon PowerShot S40"}}
    )
    Image.new("RGB", (64, 48), (120, 110, 100)).save(photo, exif=exif, xmp=LIGHTROOM_EXPORT)
    convert_file(photo, tmp_path / "photo.dng", ConvertOptions(method="analytic"))
    with tifffile.TiffFile(tmp_path / "photo.dng") as dng:
        packet = bytes(dng.pages[0].tags[700].value).decode()
    assert 'xmp:Rating="4"' in packet and "Lac Léman at dusk" in packet and "crs:" not in packet
