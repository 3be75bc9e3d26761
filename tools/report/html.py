"""The report as one self-contained HTML page: the Markdown rendered, every plot inlined as a data URI.

The page fetches nothing (no scripts, fonts or style sheets from elsewhere), so it opens offline and can
be mailed or attached as one file.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from markdown_it import MarkdownIt  # rich's Markdown parser, already installed with it

from tools.run.layout import REPORT_HTML

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #1a1a1a; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 .2rem; border-radius: 3px; }
img { max-width: 100%; display: block; margin: .8rem 0; border: 1px solid #ddd; }
blockquote { border-left: 4px solid #d33; margin: 1rem 0; padding: .2rem 1rem; background: #fff4f4; }
"""

_IMG_SRC = re.compile(r'<img src="([^"]+)"')


def _inline_images(body: str, folder: Path) -> str:
    """Each <img> of a file in the run directory becomes a data URI; anything else is left out."""

    def data_uri(match: re.Match[str]) -> str:
        name = html.unescape(match.group(1))
        path = folder / name
        if "/" in name or not name.endswith(".png") or not path.is_file():
            return '<img src=""'
        return f'<img src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'

    return _IMG_SRC.sub(data_uri, body)


def markdown_to_html(text: str, folder: Path, title: str) -> str:
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{_inline_images(body, folder)}</body>\n</html>\n"
    )


def write_html(markdown_path: Path) -> Path:
    """RESILIENCE_REPORT.html next to the Markdown report it renders."""
    folder = markdown_path.parent
    path = folder / REPORT_HTML
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(markdown_to_html(markdown_path.read_text(), folder, f"chaosbed report: {folder.name}"))
    tmp.replace(path)
    return path
