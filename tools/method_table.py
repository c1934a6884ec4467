"""One comparison table of inversion methods from `rawback eval` JSON reports (and, optionally, a
`bench/bench_methods.py` JSON for memory and parameters): markdown on stdout.

    python tools/method_table.py runs/compare/*/eval-*.json [--bench runs/compare/bench.json]

Every report's rows become table rows, grouped by protocol. Scores are means over cameras (each
camera's files averaged first, as the model card's tables), the illuminant error a median over
files; rows another report already gave for the same protocol (the analytic baseline, which every
report carries) are listed once.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

# (report key, column title, how many decimals)
COLUMNS = (
    ("psnr_packed", "packed PSNR", 2),
    ("psnr_wb_oracle", "WB-oracle PSNR", 2),
    ("psnr_overexposed", "over-exposed PSNR", 2),
    ("illuminant_error_deg", "illum. error median °", 2),
    ("seconds_per_mp", "s/MP (CPU)", 2),
)
# Reference rows that are not methods (they are given what a method must estimate).
SKIPPED_ROWS = ("analytic, oracle white balance",)


def camera_mean(images: list[dict], row: str, key: str) -> float | None:
    by_camera: dict[str, list[float]] = defaultdict(list)
    for image in images:
        value = (image.get("scores") or {}).get(row, {}).get(key)
        if value is not None:
            by_camera[image["camera"]].append(value)
    if not by_camera:
        return None
    return statistics.fmean(statistics.fmean(values) for values in by_camera.values())


def row_scores(report: dict, row: str) -> dict[str, float | None]:
    images = [image for image in report["images"] if not image.get("error")]
    scores = {key: camera_mean(images, row, key) for key, _, _ in COLUMNS}
    errors = [
        image["scores"][row]["illuminant_error_deg"]
        for image in images
        if image["scores"].get(row, {}).get("illuminant_error_deg") is not None
    ]
    scores["illuminant_error_deg"] = statistics.median(errors) if errors else None
    return scores


def method_of(row: str) -> str:
    """The method a row label names ("diffusion (euler, 1 step)" -> "diffusion"); "" for reference
    rows that borrow another row's estimate ("analytic, the model's white balance")."""
    name = row.split(" (")[0]
    return "" if "," in name else name


def table(reports: list[dict], bench: dict | None) -> str:
    by_protocol: dict[str, dict[str, dict]] = defaultdict(dict)
    files: dict[str, int] = {}
    for report in reports:
        protocol = report["protocol"]
        files[protocol] = len([image for image in report["images"] if not image.get("error")])
        for row in report["rows"]:
            if row not in SKIPPED_ROWS and row not in by_protocol[protocol]:
                by_protocol[protocol][row] = row_scores(report, row)
    # the default protocol first, the others as the reports came
    by_protocol = dict(sorted(by_protocol.items(), key=lambda item: item[0] != "rawback"))
    lines = summary(by_protocol)
    extra = bench_columns(bench)
    # With a bench, its convert times (one conversion at a time) replace eval's method times.
    columns = [c for c in COLUMNS if not (extra and c[0] == "seconds_per_mp")]
    titles = [title for _, title, _ in columns] + [title for title, _ in extra]
    for protocol, rows in by_protocol.items():
        lines += [f"**Protocol `{protocol}`** ({files[protocol]} files)", ""]
        lines += ["| method | " + " | ".join(titles) + " |", "|---" * (len(titles) + 1) + "|"]
        for row, scores in rows.items():
            cells = [fmt(scores[key], digits) for key, _, digits in columns]
            cells += [values.get(method_of(row), "n/a") for _, values in extra]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def summary(by_protocol: dict[str, dict[str, dict]]) -> list[str]:
    """Every row on every protocol at a glance: packed / WB-oracle PSNR."""
    protocols = list(by_protocol)
    rows = list(dict.fromkeys(row for rows in by_protocol.values() for row in rows))
    lines = ["**Packed / WB-oracle PSNR (dB) on every protocol**", ""]
    lines += [
        "| method | " + " | ".join(f"`{p}`" for p in protocols) + " |",
        "|---" * (len(protocols) + 1) + "|",
    ]
    for row in rows:
        cells = []
        for protocol in protocols:
            scores = by_protocol[protocol].get(row)
            cells.append(
                "n/a" if scores is None
                else f"{fmt(scores['psnr_packed'], 2)} / {fmt(scores['psnr_wb_oracle'], 2)}"
            )  # fmt: skip
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def bench_columns(bench: dict | None) -> list[tuple[str, dict[str, str]]]:
    """(title, {method: cell}) columns from a bench_methods report, at the largest photo each
    method ran: `convert`'s seconds per megapixel and peak memory, and the weights' parameters."""
    if not bench:
        return []
    largest: dict[str, dict] = {}
    for run in bench.get("runs", []):
        if run.get("seconds") is None:  # skipped (over the time limit) or failed
            continue
        if run["megapixels"] >= largest.get(run["method"], {}).get("megapixels", 0):
            largest[run["method"]] = run
    speed = {m: f"{r['seconds_per_mp']:.2f} at {r['megapixels']:.0f} MP" for m, r in largest.items()}
    memory = {m: f"{r['peak_rss_mib'] / 1024:.2f} GiB" for m, r in largest.items()}
    params = {m: f"{r['parameters'] / 1e6:.2f} M" for m, r in largest.items()}
    return [("convert s/MP (bench)", speed), ("peak memory", memory), ("parameters", params)]


def fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--bench", type=Path, help="bench/bench_methods.py JSON")
    args = parser.parse_args()
    reports = [json.loads(path.read_text()) for path in args.reports]
    bench = json.loads(args.bench.read_text()) if args.bench else None
    print(table(reports, bench))


if __name__ == "__main__":
    main()
