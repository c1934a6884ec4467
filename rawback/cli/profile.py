"""`rawback profile list|show|add|curve`: camera profiles (rawback.camera) and the finish
`curve` measures (rawback.profile_curve)."""

from pathlib import Path
from typing import Annotated

import typer

from rawback.cli.app import EXIT_FAILED, echo, profile_app, user_errors


def _numbers(values, digits: int = 4) -> str:
    return " ".join(f"{v:.{digits}f}" for v in values)


@profile_app.command("list")
def profile_list(
    text: Annotated[
        str | None,
        typer.Argument(help="Only cameras whose name holds this text (case ignored).", show_default=False),
    ] = None,
    library: Annotated[
        bool, typer.Option("--library", help="List the camera library (LibRaw's colour table) instead.")
    ] = False,
) -> None:
    """Built-in and user profiles (a user profile of the same name replaces the built-in), and how
    many cameras the library adds; with --library, the library's cameras by make."""
    with user_errors():
        from rich.console import Console

        from rawback.camera_library import cameras_named

        found = cameras_named(text or "")
        if library:
            for line in _library_lines(found):
                echo(line)
            return
        Console().print(_profile_table(text or ""))
        which = f"match {text!r}" if text else "follow them, for cameras without a profile"
        echo(f"{len(found)} cameras of LibRaw's colour table {which}:")
        echo(f"  rawback profile list --library {text or '[TEXT]'}")


def _profile_table(text: str):
    from rich import box
    from rich.table import Table

    from rawback.camera import builtin_profiles, profiles_in, user_folder

    measured = "* tone curve measured by rawback profile curve"
    user = f"+ user profile ({user_folder()}), matched before the built-in ones"
    caption = f"{user}\n{measured}"
    user_names = set(profiles_in(user_folder()))
    # Light rules, and the derived white balance left to `profile show`: on an 80-column
    # terminal the boxed table with it cut camera names to "Power…".
    table = Table(title="camera profiles", caption=caption, box=box.SIMPLE_HEAD)
    table.add_column("name", no_wrap=True)
    table.add_column("camera")
    table.add_column("CFA")
    table.add_column("bits", justify="right")
    table.add_column("black/white", justify="right", no_wrap=True)
    for name, profile in sorted(builtin_profiles().items()):
        camera = f"{profile.make} {profile.model}"
        if text.lower() not in f"{name} {camera}".lower():
            continue
        black = ",".join(f"{b:g}" for b in dict.fromkeys(profile.black_level))
        marks = ("+" if name in user_names else "") + ("*" if profile.tone_curve is not None else "")
        table.add_row(
            f"{name} {marks}".rstrip(),
            camera,
            profile.cfa_pattern,
            str(profile.bits),
            f"{black}/{profile.white_level}",
        )
    return table


def _library_lines(cameras) -> list[str]:
    """Grouped by make; within a make in LibRaw's order, which is the order a photo's model is
    matched in. Plain lines: 814 of them are for searching, and a table would wrap them on 80
    columns."""
    if not cameras:
        return ["no camera of the library matches"]
    model_width = max(len(c.model) for c in cameras)
    slug_width = max(len(c.slug) for c in cameras)
    lines = []
    for make in sorted({c.make for c in cameras}, key=str.lower):
        group = [c for c in cameras if c.make == make]
        lines.append(f"{make} ({len(group)})")
        for camera in group:
            if camera.unusable:
                levels = "four colours: not usable"
            else:
                black, white, bits, _ = camera.levels()
                levels = f"{bits:2d} bits, black {black:g}, white {white}"
            lines.append(f"  {camera.model or '(any)':{model_width}}  {camera.slug:{slug_width}}  {levels}")
    lines.append("A photo gets the first camera of its make whose name starts its model, after LibRaw's")
    lines.append("renaming (docs/cameras.md); --camera takes a name from either column.")
    return lines


@profile_app.command("show")
def profile_show(
    name: Annotated[
        str,
        typer.Argument(
            help='A profile name, a profile .json, a RAW file or a camera of the library ("Canon EOS 350D").',
            show_default=False,
        ),
    ],
) -> None:
    """Every field of a profile, and what rawback derives from it."""
    with user_errors():
        import dataclasses

        from rawback.camera import (
            PROFILE_SUFFIX,
            builtin_folder,
            library_profile,
            resolve_profile,
            user_folder,
        )
        from rawback.camera_library import find_camera
        from rawback.provenance import describe

        profile = resolve_profile(name)
        for field in dataclasses.fields(profile):
            value = getattr(profile, field.name)
            if field.name.startswith("color_matrix") and value is not None:
                rows = [_numbers(value[i : i + 3]) for i in (0, 3, 6)]
                value = " / ".join(rows)
            elif isinstance(value, tuple):
                value = ", ".join(str(v) for v in value) or "-"
            elif field.name == "finish_renderer" and profile.tone_curve is not None:
                value = describe(value)
            echo(f"{field.name}: {value}")
        neutral = profile.daylight_neutral()
        echo(f"daylight neutral (derived, camera RGB of D65 white): {_numbers(neutral)}")
        echo(f"daylight multipliers (derived, 1 / neutral): {_numbers(1.0 / neutral)}")
        if Path(name).expanduser().is_file():  # a profile .json or a RAW: that file, not a saved one
            echo(f"file: {Path(name).expanduser()}")
            return
        entry = find_camera(name)
        if entry is not None and library_profile(entry) == profile:
            echo(
                f"library entry: {entry.name!r}, LibRaw's table order {entry.order}; as the table gives "
                f"them: black {entry.black}, maximum {entry.maximum} (0: not given)"
            )
            echo("file (camera library): rawback/data/camera_library.json (rawback profile list --library)")
            return
        for folder, kind in ((user_folder(), "user"), (builtin_folder(), "built-in")):
            path = folder / f"{profile.name}{PROFILE_SUFFIX}"
            if path.is_file():
                echo(f"file ({kind}): {path}")
                break


OverwriteProfile = Annotated[
    bool, typer.Option("--overwrite", help="Replace a saved profile of the same name.")
]


@profile_app.command("add")
def profile_add(
    raw_file: Annotated[Path, typer.Argument(help="A RAW or DNG file of the camera.", show_default=False)],
    name: Annotated[
        str | None,
        typer.Option(help="Profile name. Default: from the camera's make and model.", show_default=False),
    ] = None,
    builtin: Annotated[
        bool, typer.Option("--builtin", help="Save into rawback's built-in profiles (for developers).")
    ] = False,
    overwrite: OverwriteProfile = False,
) -> None:
    """Make a camera profile from one RAW file of the camera and save it in the user folder
    ($RAWBACK_PROFILE_DIR, else $XDG_CONFIG_HOME/rawback/profiles, else ~/.config/rawback/profiles).
    A user profile is matched before a built-in one of the same camera."""
    with user_errors():
        from rawback.camera import builtin_folder, profile_from_raw, save_profile, user_folder

        profile = profile_from_raw(raw_file, name=name)
        path = save_profile(profile, builtin_folder() if builtin else user_folder(), overwrite=overwrite)
        echo(f"saved profile {profile.name} ({profile.make} {profile.model}) to {path}")
        echo(f"use it with: rawback convert PHOTO --camera {profile.name}")


@profile_app.command("curve")
def profile_curve(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="RAW+JPEG pairs of one camera (same name, e.g. IMG_0042.CR2 + IMG_0042.JPG; or a .HIF/.HEIC "
            "beside the RAW), or folders holding them. A RAW without a JPEG is paired with the preview "
            "its camera embedded in it.",
            show_default=False,
        ),
    ],
    camera: Annotated[
        str | None,
        typer.Option(
            help="The profile to add the finish to: a profile name, a profile .json or a RAW/DNG. Default: "
            "the profile matching the RAW files' make and model, else one extracted from the first RAW.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Save under this profile name. Default: the camera's own.", show_default=False),
    ] = None,
    builtin: Annotated[
        bool,
        typer.Option("--builtin", help="Save into rawback's built-in profiles (for developers)."),
    ] = False,
    overwrite: OverwriteProfile = False,
) -> None:
    """Measure the camera's JPEG tone curve and saturation from RAW+JPEG pairs of its shots (or its
    RAW files' embedded previews) and save them in its user profile: from then on `convert` and
    `batch` undo them for that camera's JPEGs (docs/profiles.md).
    Exit status 1 if a pair could not be used."""
    with user_errors():
        from rawback.camera import builtin_folder, user_folder
        from rawback.console import print_error, print_warning
        from rawback.profile_curve import save_camera_finish
        from rawback.provenance import describe

        saved = save_camera_finish(
            paths,
            folder=builtin_folder() if builtin else user_folder(),
            camera=camera,
            name=name,
            overwrite=overwrite,
            on_error=lambda exc: print_error(str(exc)),  # as it happens: measuring takes a while
        )
        measured, profile = saved.measured, saved.profile
        fit = measured.curve
        for result in measured.pairs:
            turned = f", JPEG turned {90 * result.rotation}°" if result.rotation else ""
            cropped = ""
            if max(result.margins) >= 0.5:
                left, top, right, bottom = (round(m) for m in result.margins)
                cropped = (
                    f", JPEG shows the RAW less {left}/{top}/{right}/{bottom} px (left/top/right/bottom)"
                )
            other = result.pair.jpeg.name if result.pair.jpeg is not None else "its embedded preview"
            echo(
                f"{result.pair.raw.name} + {other}: {result.pixels} samples, "
                f"residual {100 * result.rms_residual:.1f} %{turned}{cropped}"
            )
            if saved.style_differs(result):
                print_warning(
                    f"{result.pair.jpeg or result.pair.raw}: its curve differs from the other pairs' by "
                    f"{result.deviation:.2f} (another picture style or exposure setting?); measure each "
                    "style separately"
                )
        echo(f"tone curve (inverse log gains, dark to bright): {_numbers(fit.knots, 2)}")
        echo(f"saturation added after the curve: {measured.saturation:.3f} (1 = none)")
        echo(
            f"JPEGs rendered by {describe(measured.renderer)} (EXIF Software): convert undoes this finish "
            "for photos of the same renderer only"
        )
        echo(
            f"{len(measured.pairs)} pair(s), residual {100 * fit.rms_residual:.1f} %, "
            f"{int(fit.measured.sum())} of {len(fit.knots)} knots measured"
        )
        echo(f"saved profile {profile.name} ({profile.make} {profile.model}) to {saved.path}")
        if saved.failed:
            raise typer.Exit(EXIT_FAILED)
