"""The pieces of a self-contained HTML page (report.html): escaped text, real tables, embedded pictures.

The page opens from disk with no server and no network: the style is inline, pictures are PNG data in
``data:`` URLs, there is no script, and the Content-Security-Policy allows nothing else to load.
Everything read from a folder's files is escaped.
"""

from __future__ import annotations

import base64
import html
import math
import re
import struct
from pathlib import Path

from fmnist.guard.text import printable

NUMERIC = re.compile(r"^[+\-—]?\d")  # a number as text ("0.8797 ± 0.0011", "-0.0149 (p=0.0037)"): kept on one line
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
STYLE = """
:root { color-scheme: light; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #fafaf8; }
main { max-width: 62rem; margin: 0 auto; padding: 1rem 1.25rem 3rem; }
h1 { font-size: 1.6rem; margin: 1rem 0 .25rem; line-height: 1.25; overflow-wrap: anywhere; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
.lead { color: #555; margin: 0 0 1rem; overflow-wrap: anywhere; }
.answer { font-size: 1.1rem; background: #fff; border-left: 4px solid #2a7; padding: .6rem 1rem; margin: .8rem 0; }
.answer.bad { border-left-color: #c33; }
.answer p { margin: .3rem 0; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: .9rem; background: #fff; }
th, td { border: 1px solid #ddd; padding: .3rem .55rem; text-align: left; vertical-align: top; }
.words { display: inline-block; min-width: 10rem; }
.note { font-size: .85rem; color: #555; margin-top: -.5rem; }
th { background: #f0f0ec; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.better { color: #176b3a; font-weight: 600; }
.worse { color: #b3261e; font-weight: 600; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid #e4e4e0; background: #fff; }
figcaption { font-size: .85rem; color: #555; margin-top: .3rem; }
details { margin: .6rem 0; }
summary { cursor: pointer; font-weight: 600; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .9em; overflow-wrap: anywhere; }
footer { margin-top: 3rem; font-size: .85rem; color: #666; }
@media (max-width: 600px) { body { font-size: 15px; } main { padding: .5rem .75rem 2rem; } h1 { font-size: 1.3rem; }
                            th, td { padding: .25rem .4rem; } }
"""


def text(value) -> str:
    """``value`` as HTML text: markup escaped, and control characters and a file name's bytes that are
    not UTF-8 written as escapes (the page is UTF-8)."""
    return html.escape(printable(str(value)))


def number(value, digits: int = 4) -> str:
    """A number with ``digits`` decimals; NaN, None or an empty CSV field as a dash."""
    if value is None or value == "" or isinstance(value, float) and math.isnan(value):
        return "—"
    return f"{float(value):.{digits}f}" if isinstance(value, (int, float)) else text(value)


def integer(value) -> str:
    return number(value, 0)


def table(rows: list[dict], columns: list[tuple], caption: str = "", attributes: str = "") -> str:
    """``columns``: (key, header) or (key, header, format) where format turns a value into HTML."""
    head = "".join(f'<th scope="col">{text(column[1])}</th>' for column in columns)
    body = []
    for row in rows:
        cells = []
        for key, _, *rest in columns:
            value = row.get(key, "")
            shown = rest[0](value) if rest else number(value)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool) or NUMERIC.match(shown)
            cells.append(f'<td class="num">{shown}</td>' if numeric else f"<td>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = f'<p class="note">{caption}</p>' if caption else ""
    return (f'<div class="scroll"><table{attributes}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>{note}')


def pairs(items: list[tuple[str, object]], attributes: str = "") -> str:
    """A two-column table of names and values (settings, versions); lists as comma-separated text."""
    def shown(value) -> str:
        if isinstance(value, (list, tuple)):
            return ", ".join(f"{item:g}" if isinstance(item, float) else str(item) for item in value)
        return "default" if value is None else str(value)

    rows = "".join(f'<tr><th scope="row">{text(name)}</th><td class="words">{text(shown(value))}</td></tr>'
                   for name, value in items)
    return f'<div class="scroll"><table{attributes}><tbody>{rows}</tbody></table></div>'


def png_size(payload: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (for the img tag: the page keeps its layout as it loads)."""
    if len(payload) < 24 or payload[:8] != b"\x89PNG\r\n\x1a\n" or payload[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", payload[16:24])


def figure(path: Path, alt: str, caption: str = "") -> str:
    """The picture in ``path`` embedded as PNG data, or a line saying it is missing."""
    path = Path(path)
    if not path.is_file():
        return f"<p>No <code>{text(path.name)}</code> in this folder.</p>"
    payload = path.read_bytes()
    try:
        width, height = png_size(payload)
    except ValueError:
        return f"<p><code>{text(path.name)}</code> is not a PNG file; not shown.</p>"
    data = base64.b64encode(payload).decode("ascii")
    note = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure><img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
            f'alt="{text(alt)}">{note}</figure>')


def section(identifier: str, title: str, *parts: str) -> str:
    return f'<section id="{identifier}"><h2>{text(title)}</h2>{"".join(parts)}</section>'


def page(title: str, lead: str, sections: list[str], footer: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            f"<title>{text(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><main><header><h1>{text(title)}</h1><p class=\"lead\">{lead}</p></header>\n"
            + "\n".join(sections) + f"\n<footer>{footer}</footer></main></body></html>\n")
