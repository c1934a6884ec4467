"""Leave one camera out: how rawback does on a camera it never trained on (issue 18, item 5).

For every camera of DATA (Make and Model as LibRaw reads them, the names `rawback eval` reports),
train a model on the other cameras' RAW files only, then evaluate it on the held-out camera's files,
beside the analytic baseline given the same profile and the same white-balance source (eval's own
rows), under each protocol asked for:

    RUNS/<camera>/train-data/   symlinks to the other cameras' files (what training sees)
    RUNS/<camera>/eval-data/    symlinks to the held-out camera's files
    RUNS/<camera>/run/          `rawback train --data train-data --out run ...`
    RUNS/<camera>/eval/         `rawback eval --data eval-data --weights run/model.pt ...`, one
                                report per protocol (eval-<protocol>-diffusion.json/.md)
    RUNS/summary.json, .md      per held-out camera and protocol: the diffusion and analytic rows'
                                packed, WB-oracle and over-exposed PSNR and illuminant error, and
                                diffusion minus analytic

Training is resumable: a run that has finished is skipped, an unfinished one continues with
`--resume` (so give the same --train-args again). Evaluation is rerun every time (it is cheap
beside training).

    python tools/leave_one_camera_out.py ../shared/data/raw --out runs/loco \\
        --train-args "--set steps=20000" --protocol rawback --protocol finished [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from rawback.io.files import find_raw_files
from rawback.io.raw import read_make_model

# The columns of the summary: eval's metric keys (rawback.evaluate.run.METRICS) and their titles.
SUMMARY_METRICS = {
    "psnr_packed": "PSNR packed",
    "psnr_wb_oracle": "PSNR WB-oracle",
    "psnr_overexposed": "PSNR over-exp.",
    "illuminant_error_deg": "illum. error °",
}
BASELINE = "analytic"  # eval's baseline row (rawback.evaluate.run.BASELINE)
SAME_WHITE = "analytic, the model's white balance"  # rawback.evaluate.run.SAME_WHITE
UNKNOWN_CAMERA = "unknown camera"


def camera_name(path: Path, by_make: bool = False) -> str:
    """The camera as `rawback eval` names it: "Make Model"; or only its make, so that a maker's
    sibling models (GoPro HERO6, HERO7...) are held out together."""
    make, model = read_make_model(path)
    return (make if by_make else f"{make} {model}").strip() or UNKNOWN_CAMERA


def group_by_camera(data: Path, by_make: bool = False) -> dict[str, list[Path]]:
    cameras: dict[str, list[Path]] = {}
    for path in find_raw_files(data):
        cameras.setdefault(camera_name(path, by_make), []).append(path)
    return dict(sorted(cameras.items()))


def folder_name(camera: str) -> str:
    """A file-system-safe folder for a camera ("Canon PowerShot S40" -> "Canon-PowerShot-S40")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", camera).strip("-") or "camera"


def link_files(files: list[Path], data: Path, folder: Path) -> None:
    """`folder` holds exactly a symlink per file, at its path relative to `data` (so names from
    different subfolders cannot collide), and nothing else."""
    wanted = {folder / path.relative_to(data): path.resolve() for path in files}
    if folder.exists():
        for old in sorted(folder.rglob("*"), reverse=True):
            if old.is_symlink() or old.is_file():
                if old not in wanted or os.readlink(old) != str(wanted[old]):
                    old.unlink()
            elif old.is_dir() and not any(old.iterdir()):
                old.rmdir()
    for link, target in wanted.items():
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)


def run_state(run: Path) -> str:
    """ "new", "unfinished" or "finished", from the run's log: the loop always logs its last step
    with the total it was started for."""
    log = run / "log.jsonl"
    if not (run / "checkpoint.pt").exists():
        return "new"
    if log.exists():
        for line in reversed(log.read_text().splitlines()):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if record.get("event") == "step":
                return "finished" if record["step"] >= record["total"] else "unfinished"
    return "unfinished"


def train_command(
    train_data: Path, run: Path, train_args: list[str], scenes: Path | None
) -> list[str] | None:
    """The `rawback train` command for a held-out camera, or None when its run has finished."""
    state = run_state(run)
    if state == "finished":
        return None
    command = [sys.executable, "-m", "rawback", "train", "--data", str(train_data), "--out", str(run)]
    if scenes is not None:
        command += ["--scenes", str(scenes)]
    command += train_args
    if state == "unfinished":
        command.append("--resume")
    return command


def eval_command(
    eval_data: Path, run: Path, report_dir: Path, protocol: str, eval_args: list[str]
) -> list[str]:
    return [
        sys.executable, "-m", "rawback", "eval", "--data", str(eval_data), "--method", "diffusion",
        "--weights", str(run / "model.pt"), "--protocol", protocol, "--report-dir", str(report_dir),
        "--quiet", *eval_args,
    ]  # fmt: skip


def report_path(report_dir: Path, protocol: str) -> Path:
    """Where eval writes its JSON report (rawback.evaluate.report.write_reports)."""
    return report_dir / f"eval-{protocol}-diffusion.json"


def summary_rows(camera: str, protocol: str, report: dict) -> list[dict]:
    """The diffusion row(s) and the analytic baseline of one eval report, each diffusion row with its
    difference from the baseline (positive PSNR difference: diffusion is better; positive
    illuminant-error difference: diffusion is worse). The oracle row is left out: its white balance
    is the truth, which a held-out camera's photos do not give. The baseline given the model's own
    white balance is kept: the difference from it is the structure the model restores."""
    means = report["mean"]
    base = means.get(BASELINE, {})
    images = sum(1 for image in report["images"] if image["error"] is None)
    rows = []
    for label in report["rows"]:
        if label not in (BASELINE, SAME_WHITE) and not label.startswith("diffusion"):
            continue
        scores = {key: means[label].get(key) for key in SUMMARY_METRICS}
        row = {"camera": camera, "protocol": protocol, "row": label, "images": images, **scores}
        if label != BASELINE:
            row["minus_analytic"] = {
                key: None if scores[key] is None or base.get(key) is None else scores[key] - base[key]
                for key in SUMMARY_METRICS
            }
        rows.append(row)
    return rows


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}" if value < 0 else f"{value:.2f}"


def summary_markdown(rows: list[dict], problems: list[str], data: Path) -> str:
    titles = list(SUMMARY_METRICS.values())
    lines = [
        "# rawback: leave one camera out",
        "",
        f"Data: `{data}`. Each camera's files are scored by a model trained on the other cameras' files "
        "only, beside the analytic baseline given the same profile and white-balance source.",
        "",
        "| held-out camera | protocol | row | images | " + " | ".join(titles) + " |",
        "|---" * (4 + len(titles)) + "|",
    ]
    for row in rows:
        cells = " | ".join(_cell(row[key]) for key in SUMMARY_METRICS)
        lines.append(f"| {row['camera']} | {row['protocol']} | {row['row']} | {row['images']} | {cells} |")
        if "minus_analytic" in row:
            diff = " | ".join(
                "n/a" if (v := row["minus_analytic"][key]) is None else f"{v:+.2f}" for key in SUMMARY_METRICS
            )
            lines.append(f"| {row['camera']} | {row['protocol']} | diffusion − analytic | | {diff} |")
    if problems:
        lines += ["", "## Problems", "", *[f"- {problem}" for problem in problems]]
    return "\n".join(lines) + "\n"


def run(command: list[str], dry_run: bool) -> int:
    print(shlex.join(command), flush=True)
    return 0 if dry_run else subprocess.run(command, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder of RAW files of several cameras")
    parser.add_argument("--out", type=Path, required=True, help="folder of the runs and the summary")
    parser.add_argument("--camera", action="append", default=[], help="hold out only this camera "
                        "(\"Make Model\" as eval names it); repeatable; default every camera")  # fmt: skip
    parser.add_argument("--protocol", action="append", default=[], help="eval protocol; repeatable "
                        "(default rawback)")  # fmt: skip
    parser.add_argument("--train-args", default="", help="more options of `rawback train`, one string")
    parser.add_argument("--eval-args", default="", help="more options of `rawback eval`, one string")
    parser.add_argument("--scenes", type=Path, help="`rawback train --scenes` for every run")
    parser.add_argument("--by-make", action="store_true", help="hold out a make at a time (every "
                        "model of it), not a camera model")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    protocols = args.protocol or ["rawback"]

    try:
        cameras = group_by_camera(args.data, by_make=args.by_make)
    except Exception as exc:  # RawbackError: a missing folder; one line, no traceback
        parser.exit(2, f"error: {exc}\n")
    if not cameras:
        parser.exit(2, f"error: {args.data}: no RAW files\n")
    if len(cameras) < 2:
        parser.exit(2, f"error: {args.data}: one camera ({next(iter(cameras))}); nothing to hold out\n")
    by_lower = {name.lower(): name for name in cameras}
    unknown = [name for name in args.camera if name.lower() not in by_lower]
    if unknown:
        parser.exit(2, f"error: no files of {', '.join(unknown)}; cameras here: {', '.join(cameras)}\n")
    held_out = [by_lower[name.lower()] for name in args.camera] or list(cameras)
    train_args, eval_args = shlex.split(args.train_args), shlex.split(args.eval_args)

    rows: list[dict] = []
    problems: list[str] = []
    for camera in held_out:
        base = args.out / folder_name(camera)
        others = [path for other, files in cameras.items() if other != camera for path in files]
        print(f"== {camera}: {len(cameras[camera])} held out, {len(others)} to train on", flush=True)
        train_data, eval_data, run_dir, report_dir = (
            base / "train-data",
            base / "eval-data",
            base / "run",
            base / "eval",
        )
        if not args.dry_run:
            link_files(others, args.data, train_data)
            link_files(cameras[camera], args.data, eval_data)
        command = train_command(train_data, run_dir, train_args, args.scenes)
        if command is None:
            print(f"{run_dir}: finished, not trained again", flush=True)
        elif run(command, args.dry_run) != 0:
            problems.append(f"{camera}: training failed; not evaluated")
            continue
        for protocol in protocols:
            code = run(eval_command(eval_data, run_dir, report_dir, protocol, eval_args), args.dry_run)
            report = report_path(report_dir, protocol)
            if args.dry_run:
                continue
            if code != 0:  # eval exits 1 when some file failed, with a report of the rest
                problems.append(f"{camera}, {protocol}: eval exited {code}")
            if report.exists():
                rows += summary_rows(camera, protocol, json.loads(report.read_text()))
            else:
                problems.append(f"{camera}, {protocol}: no report")
    if args.dry_run:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"data": str(args.data), "cameras": {c: len(f) for c, f in cameras.items()},
               "metrics": SUMMARY_METRICS, "rows": rows, "problems": problems}  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "summary.md").write_text(summary_markdown(rows, problems, args.data), encoding="utf-8")
    print(f"wrote {args.out / 'summary.md'}")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
