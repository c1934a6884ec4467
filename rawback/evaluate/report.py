"""Eval results as a Rich table (drawn by the CLI), JSON and Markdown files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rawback.evaluate.run import MATCHED, METRICS, EvalReport
from rawback.io.atomic import atomic_output, make_folder
from rawback.methods import OTHER_LEARNED


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if key.startswith("ssim") or key == "protocol_ssim":
        return f"{value:.4f}"
    if key == "seconds_per_mp":
        return f"{value:.3f}"
    return f"{value:.2f}"


def shown_metrics(report: EvalReport) -> list[str]:
    """The metric columns that have a value for at least one image."""
    return [
        key
        for key in METRICS
        if any(img.rows.get(row, {}).get(key) is not None for img in report.images for row in report.rows)
    ]


def _diffusion_json(settings) -> dict:
    from rawback.inference import as_run  # torch: only when the model ran

    return dataclasses.asdict(as_run(settings))


def run_line(run: dict) -> str:
    if not run:
        return "Run: not recorded."
    line = f"Run: rawback {run['rawback']}, {run['date']}, {run['machine']}"
    if "weights" in run:
        line += (
            f"; torch {run['torch']} on {run['device']} ({run['torch_threads']} threads), weights "
            f"`{Path(str(run['weights'])).name}` (sha256 {str(run['weights_sha256'])[:12]})"
        )
    for method in OTHER_LEARNED:
        if f"{method}_weights" in run:
            line += (
                f"; {method} weights `{Path(str(run[f'{method}_weights'])).name}` "
                f"(sha256 {str(run[f'{method}_weights_sha256'])[:12]})"
            )
    return line + "."


def to_json(report: EvalReport) -> dict:
    opts = report.options
    return {
        "run": report.run,
        "protocol": opts.protocol,
        "protocol_summary": report.protocol_summary,
        "method": opts.tested[0],
        "methods": list(opts.tested),
        "data": str(opts.data),
        "pairs": str(opts.pairs) if opts.pairs else None,
        "camera": opts.camera,
        "tone_curve_from": opts.tone_curve_from,
        "diffusion": _diffusion_json(opts.diffusion) if "diffusion" in opts.tested else None,
        "steps": list(opts.steps),
        "rows": report.rows,
        "metrics": METRICS,
        "mean": report.means(),
        "images": [
            {
                "file": img.file,
                "camera": img.camera,
                "megapixels": img.megapixels,
                "error": img.error,
                "finish": img.finish,
                "scores": img.rows,
            }
            for img in report.images
        ],
    }


def finish_line(report: EvalReport) -> str:
    if report.options.tone_curve_from != MATCHED:
        return f"Every row undoes the tone curve measured in `{report.options.tone_curve_from}`."
    used = sorted({img.finish for img in report.images if img.finish})
    return (
        "Every row undoes the finish measured in the profile of the file's own camera, where it has "
        f"one, as `convert` does: {', '.join(f'`{name}`' for name in used) or 'none here'}."
    )


def to_markdown(report: EvalReport) -> str:
    keys = shown_metrics(report)
    head = "| | " + " | ".join(METRICS[k] for k in keys) + " |"
    rule = "|---" * (len(keys) + 1) + "|"
    lines = [
        f"# rawback eval: protocol `{report.options.protocol}`, "
        + ("method " if len(report.options.tested) == 1 else "methods ")
        + ", ".join(f"`{m}`" for m in report.options.tested),
        "",
        f"Protocol: {report.protocol_summary}.",
        f"Data: `{report.options.data}`, {len(report.images)} files, {len(report.failed)} failed.",
        *([finish_line(report)] if report.options.tone_curve_from else []),
        run_line(report.run),
        "",
        "## Mean over images",
        "",
        head.replace("| |", "| row |", 1),
        rule,
    ]
    means = report.means()
    for row in report.rows:
        lines.append(f"| {row} | " + " | ".join(_fmt(k, means[row][k]) for k in keys) + " |")
    lines += ["", "## Per image", "", head.replace("| |", "| file | row |", 1), "|---" + rule]
    for img in report.images:
        if img.error:
            lines.append(f"| {img.file} | error: {img.error} |" + " |" * len(keys))
            continue
        for row in report.rows:
            cells = " | ".join(_fmt(k, img.rows[row].get(k)) for k in keys)
            lines.append(f"| {img.file} | {row} | {cells} |")
    return "\n".join(lines) + "\n"


def write_reports(report: EvalReport, folder: Path) -> tuple[Path, Path]:
    """Write `eval-<protocol>-<method>.json` and `.md` into `folder` (replacing older ones); with
    several methods, their names joined by `+`."""
    make_folder(folder)
    stem = f"eval-{report.options.protocol}-{'+'.join(report.options.tested)}"
    if report.options.pairs:
        stem += "-pairs"
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    with atomic_output(json_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(to_json(report), indent=2) + "\n")
    with atomic_output(md_path, overwrite=True) as tmp:
        # A file name that is not UTF-8 (held with surrogates) is written escaped, as printed.
        tmp.write_text(to_markdown(report), encoding="utf-8", errors="backslashreplace")
    return json_path, md_path


def rich_tables(report: EvalReport) -> list:
    """A per-image table and a summary table, for the CLI to print."""
    from rich.markup import escape
    from rich.table import Table

    keys = shown_metrics(report)
    per_image = Table(title=f"rawback eval: {report.options.protocol} protocol, per image")
    per_image.add_column("file")
    per_image.add_column("row")
    for key in keys:
        per_image.add_column(METRICS[key], justify="right")
    for img in report.images:
        if img.error:
            per_image.add_row(escape(img.file), f"[red]error: {escape(img.error)}[/red]", *[""] * len(keys))
            continue
        for i, row in enumerate(report.rows):
            per_image.add_row(
                escape(img.file) if i == 0 else "",
                row,
                *[_fmt(k, img.rows[row].get(k)) for k in keys],
                end_section=i == len(report.rows) - 1,
            )
    summary = Table(title=f"mean over {len(report.images) - len(report.failed)} images")
    summary.add_column("row")
    for key in keys:
        summary.add_column(METRICS[key], justify="right")
    means = report.means()
    for row in report.rows:
        summary.add_row(row, *[_fmt(k, means[row][k]) for k in keys])
    return [per_image, summary]
