"""``fmnist report FOLDER``: write report.html into a run, comparison or sweep folder, from its files."""

from __future__ import annotations

from fmnist.cli import common

DESCRIPTION = """Write report.html into a run, comparison or sweep folder: one self-contained page (no server,
no network; pictures embedded) with the answer first (a run's test accuracy against the tutorial's;
a study's methods against the baseline, with 95% intervals and paired t-tests, in words), the curves,
the heatmaps, per-class results where `fmnist evaluate` has run, every epoch or member, and the settings
and library versions. Made from the folder's files only; train, compare and sweep write it at the end."""


def add_parsers(commands) -> None:
    report = commands.add_parser("report", help="write report.html, one page to read or send, into a folder",
                                 description=DESCRIPTION, epilog=common.EPILOG)
    report.add_argument("folder", metavar="FOLDER", help="a run folder (fmnist train) or a study folder (compare, sweep)")
    report.set_defaults(handler=report_command)


def report_command(args) -> int:
    from fmnist.reporting.report import write_report

    print(f"wrote {write_report(args.folder)}")
    return 0


def write_at_end(folder) -> None:
    """train, compare and sweep: the report beside their other files (process 0), named on stderr."""
    import sys

    from fmnist.reporting.report import write_report

    print(f"fmnist: wrote {write_report(folder)}", file=sys.stderr)


def after_evaluate(folder) -> None:
    """``fmnist evaluate`` of a run folder: its report, and the report of the study it belongs to, if that
    has one, now show the evaluation."""
    from pathlib import Path

    from fmnist.store import artifacts

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        return  # a model file outside a run folder: no report to update
    write_at_end(folder)
    study = folder.resolve().parent  # a study keeps its members' run folders inside it
    if "study_member" in artifacts.read_json(folder / "config.json") and (study / "report.html").is_file():
        write_at_end(study)
