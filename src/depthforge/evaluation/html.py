"""The comparison report as one self-contained HTML page: tables with the best value of each column marked and the
report's pictures embedded as base64 PNG (no server, no network, no script)."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from ..files import write_bytes
from .tables import cell, model_line, set_rows, set_title
from .report import NOTE, higher_is_better

CONTENT_PX = 1368  # the page's content width: pictures up to this wide show at their real size (viz.figure)
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1368px; padding: 0 16px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
code { background: #f4f4f4; padding: 1px 4px; border-radius: 3px; }
.scroll { overflow-x: auto; max-width: 100%; }
.scroll td:first-child, .scroll th:first-child { position: sticky; left: 0; z-index: 1; }
.scroll td:first-child { background: #fff; }
table { border-collapse: collapse; font-size: 12.5px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
td.best { font-weight: bold; background: #e3f4e1; }
th small { color: #777; font-weight: normal; }
figure { margin: 8px 0; }
img { max-width: 100%; margin: 6px 0; }
.note { color: #555; font-size: 12.5px; }
"""


def escape(text: str) -> str:
    """HTML-escaped, with Markdown's `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))


def figure(folder: Path, name: str) -> str:
    data = base64.b64encode((folder / name).read_bytes()).decode()
    return f'<figure><img alt="{escape(name)}" src="data:image/png;base64,{data}"><figcaption class="note">' \
           f"{escape(name)}</figcaption></figure>"


def _table(report: dict, name: str) -> str:
    data = report["sets"][name]
    cols = data["columns"]
    aligned = {e["label"]: e["align"] != "none" for e in report["models"]}
    head = "".join(f"<th>{escape(c)}<br><small>{'↑' if higher_is_better(c) else '↓'}</small></th>" for c in cols)
    body = []
    for label, m in set_rows(report, name):
        cells = "".join(f'<td class="best">{cell(c, m.get(c))}</td>' if label in data["best"].get(c, [])
                        else f"<td>{cell(c, m.get(c))}</td>" for c in cols)
        body.append(f"<tr><td>{escape(label)}{' †' if aligned[label] else ''}</td>{cells}</tr>")
    return f'<div class="scroll"><table id="table-{escape(name)}"><tr><th>model</th>{head}</tr>' + \
        "".join(body) + "</table></div>"


def render_html(report: dict, folder: Path) -> str:
    """The page for ``report`` (``compare.compare``'s dict) whose pictures lie in ``folder``."""
    parts = [f"<h1>Model comparison</h1><p class=note>{escape(report['created'])} · test size "
             f"{report['size'][0]}×{report['size'][1]} · {escape(report['machine'])}</p>"]
    if report.get("command"):
        parts.append(f"<p><code>{html.escape(report['command'])}</code></p>")
    if report.get("budget"):
        b = report["budget"]
        parts.append(f"<p>Budget per recipe: {b['steps']} steps</p>" if b.get("steps")
                     else f"<p>Budget per recipe: {b['minutes']:g} minutes</p>")
    parts.append("<ul>" + "".join(f"<li>{escape(model_line(e))}</li>" for e in report["models"]) + "</ul>")
    for name in report["sets"]:
        parts.append(f"<h2>{escape(name)}</h2><p class=note>{escape(set_title(report, name))}</p>")
        parts.append(_table(report, name))
    parts.append("<p class=note>Wide tables scroll sideways; the model column stays. Green: best of the column "
                 "(↑ higher is better, ↓ lower). †: relative output, "
                 "aligned to the ground truth per image. " + escape(NOTE) + "</p>")
    parts.append("<h2>Pictures</h2>" + "".join(figure(folder, p) for p in report.get("pictures", [])))
    return f"<!doctype html><html lang=en><head><meta charset=utf-8><title>depthforge: model comparison</title>" \
           f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"


def write_html(report: dict, path: Path) -> None:
    write_bytes(path, render_html(report, Path(path).parent).encode())
