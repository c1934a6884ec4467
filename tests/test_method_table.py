"""tools/method_table.py: the comparison table of docs/methods.md from eval and bench reports."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "method_table.py"


@pytest.fixture(scope="module")
def method_table():
    spec = importlib.util.spec_from_file_location("method_table", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(method_row: str, packed: dict[str, float]) -> dict:
    """An eval report of two files of camera A and one of camera B (packed PSNR per file)."""
    rows = [method_row, "analytic", "analytic, oracle white balance"]
    images = []
    for name, camera in (("a1", "A"), ("a2", "A"), ("b1", "B")):
        scores = {row: {"psnr_packed": packed[name], "illuminant_error_deg": 2.0} for row in rows}
        scores["analytic"] = {"psnr_packed": 30.0, "illuminant_error_deg": 10.0}
        images.append({"file": name, "camera": camera, "error": None, "scores": scores})
    images.append({"file": "bad", "camera": "C", "error": "unreadable", "scores": {}})
    return {"protocol": "rawback", "rows": rows, "images": images}


def test_rows_are_camera_means_and_the_baseline_is_listed_once(method_table) -> None:
    reports = [
        report("diffusion (euler, 1 step)", {"a1": 30.0, "a2": 34.0, "b1": 40.0}),
        report("invisp", {"a1": 20.0, "a2": 20.0, "b1": 26.0}),
    ]
    bench = {"runs": [
        {"method": "invisp", "megapixels": 2, "seconds": 4.0, "seconds_per_mp": 2.0, "peak_rss_mib": 512,
         "parameters": 45_344},
        {"method": "invisp", "megapixels": 12, "seconds": 12.0, "seconds_per_mp": 1.0, "peak_rss_mib": 1024,
         "parameters": 45_344},
        {"method": "invisp", "megapixels": 24, "skipped": "predicted 300 s > 240 s", "parameters": 45_344},
        {"method": "diffusion", "megapixels": 12, "seconds": 36.0, "seconds_per_mp": 3.0,
         "peak_rss_mib": 2048, "parameters": 1_332_680},
    ]}  # fmt: skip
    text = method_table.table(reports, bench)
    overview, protocol = text.split("**Protocol `rawback`**")
    assert "| invisp | 23.00 / n/a |" in overview  # packed / WB-oracle on every protocol
    lines = [line for line in protocol.splitlines() if line.startswith("| ")]
    assert "(3 files)" in text  # the unreadable file is not counted
    # camera A's two files average to 32, then the mean with camera B's 40 is 36, not 34.67
    assert lines[1].startswith("| diffusion (euler, 1 step) | 36.00 |")
    assert lines[3].startswith("| invisp | 23.00 |")  # (20 + 26) / 2
    assert sum(line.startswith("| analytic |") for line in lines) == 1
    assert not any(line.startswith("| analytic, oracle") for line in lines)
    # bench cells at the largest size that ran; none for a method the bench did not run
    assert lines[3].endswith("| 1.00 at 12 MP | 1.00 GiB | 0.05 M |")
    assert lines[1].endswith("| 3.00 at 12 MP | 2.00 GiB | 1.33 M |")  # "diffusion (euler, 1 step)"
    assert lines[2] == "| analytic | 30.00 | n/a | n/a | 10.00 | n/a | n/a | n/a |"  # not in this bench
