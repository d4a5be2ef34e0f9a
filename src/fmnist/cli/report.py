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


def wrote(page) -> None:
    """Name a report page the library wrote (train, compare, sweep and evaluate write theirs), on stderr."""
    import sys

    if page is not None:
        print(f"fmnist: wrote {page}", file=sys.stderr)
