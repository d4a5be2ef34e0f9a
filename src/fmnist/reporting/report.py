"""``report.html``: a run, comparison or sweep folder as one page to read or send.

Written from the folder's files only (history is data: config.json / study.json, the CSV tables,
metrics.json, evaluation.json and the PNG figures), so ``fmnist report FOLDER`` writes the same page
again at any time. The answer comes first: for a run, its test accuracy against the tutorial's
(run_page.py); for a study, each method against the baseline, in words and as a table with intervals
and p-values (study_page.py). Then the figures, per-class results where ``fmnist evaluate`` has run,
every epoch or member, and the settings and library versions (page_parts.py: what both pages share).
One self-contained file (html.py): no script, nothing fetched.

The folder's files are read as data that may have been damaged or edited: each table must have its
columns with numbers where numbers belong, metrics.json and evaluation.json their fields of their types,
and every picture embedded must lie inside the folder reported on (a member's ``run_dir`` of
``../elsewhere`` or a figure linked out of the folder is refused): a DataError naming the file, and
report.html stays as it was.
"""

from __future__ import annotations

from pathlib import Path

from fmnist.errors import UsageError
from fmnist.reporting.html import page, text
from fmnist.reporting.run_page import run_page
from fmnist.reporting.study_page import study_page
from fmnist.runtime import VERSION
from fmnist.store import artifacts, runs, studies

REPORT = "report.html"


def refresh_reports(run_folder) -> list[Path]:
    """After ``fmnist evaluate`` of a run folder: its report, and the report of the study it belongs to
    (when that has one), rewritten to show the evaluation. Returns the pages written."""
    folder = Path(run_folder)
    if not (folder / "config.json").is_file():
        return []  # a model file outside a run folder: no report to update
    written = [write_report(folder)]
    study = folder.resolve().parent  # a study keeps its members' run folders inside it
    if "study_member" in artifacts.read_json(folder / "config.json") and (study / "report.html").is_file():
        written.append(write_report(study))
    return written


def write_report(folder) -> Path:
    """Write ``folder``/report.html; UsageError when the folder is neither a run nor a study."""
    folder = Path(folder)
    if (folder / studies.STUDY_FILE).is_file():  # both readers check the settings: valid values, no markup
        title, lead, sections = study_page(folder, studies.read_study(folder))
    elif (folder / "config.json").is_file():
        title, lead, sections = run_page(folder, runs.read_config(folder))
    elif not folder.is_dir():
        raise UsageError(f"{folder}: no such folder" if not folder.exists() else f"{folder}: not a folder")
    else:
        raise UsageError(f"{folder}: not a run, comparison or sweep folder (no config.json or {studies.STUDY_FILE})")
    footer = (f"Written by fmnist {text(VERSION)} from the files in <code>{text(folder)}</code>; "
              f"<code>fmnist report {text(folder)}</code> writes it again. Training curves of every run and member: "
              f"<code>tensorboard --logdir {text(folder)}</code>.")
    path = folder / REPORT
    artifacts.write_bytes(path, page(title, lead, sections, footer).encode())
    return path
