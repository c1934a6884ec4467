"""The part of a photo's XMP packet a raw file may carry: what the photographer wrote about it.

A JPEG's XMP also holds what describes the JPEG, not the raw: Lightroom's and Camera Raw's develop
settings (`crs:`), which a raw developer would apply to the DNG a second time, the editing history,
pixel dimensions and colour space. So the packet is filtered to an allow-list of descriptive
properties (title, caption, keywords, creator, rights, rating, label, IPTC location and contact)
and everything else is dropped. The original packet's structure is kept for what remains.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
X = "adobe:ns:meta/"
DC = "http://purl.org/dc/elements/1.1/"
XMP = "http://ns.adobe.com/xap/1.0/"
XMP_RIGHTS = "http://ns.adobe.com/xap/1.0/rights/"
PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"
IPTC_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
LIGHTROOM = "http://ns.adobe.com/lightroom/1.0/"

# Namespaces whose every property describes the photograph, and single properties of others.
DESCRIPTIVE_NAMESPACES = {DC, XMP_RIGHTS, IPTC_CORE, IPTC_EXT}
PHOTOSHOP_DESCRIPTIVE = (
    "Headline", "Caption", "City", "State", "Country", "Credit", "Source", "Instructions",
    "AuthorsPosition", "CaptionWriter", "Category", "SupplementalCategories", "TransmissionReference",
    "Urgency", "DateCreated",
)  # fmt: skip
DESCRIPTIVE_PROPERTIES = {
    (XMP, "Rating"),
    (XMP, "Label"),
    (LIGHTROOM, "hierarchicalSubject"),
    *((PHOTOSHOP, name) for name in PHOTOSHOP_DESCRIPTIVE),
}
PREFIXES = {
    "x": X, "rdf": RDF, "dc": DC, "xmp": XMP, "xmpRights": XMP_RIGHTS, "photoshop": PHOTOSHOP,
    "Iptc4xmpCore": IPTC_CORE, "Iptc4xmpExt": IPTC_EXT, "lr": LIGHTROOM,
}  # fmt: skip
for _prefix, _uri in PREFIXES.items():  # serialise with the usual prefixes, not ns0, ns1...
    ET.register_namespace(_prefix, _uri)
# Real packets nest a handful of levels (x:xmpmeta, rdf:RDF, a description, a property, a list, an
# item); a packet nested deeper is not one to carry, and ElementTree serialises recursively.
MAX_DEPTH = 32
PACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
PACKET_END = '<?xpacket end="w"?>'


def descriptive_xmp(packet: bytes | None) -> bytes | None:
    """The allow-listed properties of an XMP packet as a new packet (UTF-8), or None when the
    packet is missing, unreadable or describes nothing worth carrying."""
    if not packet:
        return None
    text = packet.decode("utf-8", errors="replace")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:  # XMP has no use for them; entity expansion does
        return None
    start, end = text.find("<x:xmpmeta"), text.rfind("</x:xmpmeta>")
    if start < 0 or end < 0:
        start, end = text.find("<rdf:RDF"), text.rfind("</rdf:RDF>")
        if start < 0 or end < 0:
            return None
        text = f'<x:xmpmeta xmlns:x="{X}">{text[start : end + len("</rdf:RDF>")]}</x:xmpmeta>'
    else:
        text = text[start : end + len("</x:xmpmeta>")]
    try:
        if _depth(text) > MAX_DEPTH:
            return None
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    kept = False
    for rdf in root.iter(f"{{{RDF}}}RDF"):
        for description in list(rdf.findall(f"{{{RDF}}}Description")):
            for name in list(description.attrib):
                if name.startswith(f"{{{RDF}}}"):
                    continue  # rdf:about
                if not _descriptive(name):
                    del description.attrib[name]
            for child in list(description):
                if not _descriptive(child.tag):
                    description.remove(child)
            if any(not n.startswith(f"{{{RDF}}}") for n in description.attrib) or len(description):
                kept = True
            else:
                rdf.remove(description)
    if not kept:
        return None
    body = ET.tostring(root, encoding="unicode")
    return f"{PACKET_BEGIN}{body}{PACKET_END}".encode()


def _descriptive(qualified: str) -> bool:
    """Whether an ElementTree name "{namespace}property" is one the raw file may carry."""
    if not qualified.startswith("{"):
        return False
    namespace, _, name = qualified[1:].partition("}")
    return namespace in DESCRIPTIVE_NAMESPACES or (namespace, name) in DESCRIPTIVE_PROPERTIES


def _depth(text: str) -> int:
    """The deepest element nesting of an XML text, found without building a tree (a pull parser
    gives start and end events): stops counting once past MAX_DEPTH."""
    parser = ET.XMLPullParser(events=("start", "end"))
    depth = deepest = 0
    for start in range(0, len(text), 65536):
        parser.feed(text[start : start + 65536])
        for event, _ in parser.read_events():
            depth += 1 if event == "start" else -1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
    return deepest
