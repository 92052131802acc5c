"""Blocks to Markdown and to one self-contained HTML page (figures inline, no scripts)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Sequence

import jinja2

VERDICT_WORD = {"supported": "SUPPORTED", "refuted": "REFUTED", "inconclusive": "INCONCLUSIVE"}


_MD_SPECIAL = re.compile(r"([\\`*_\[\]!|~])")


def md_escape(text: str) -> str:
    """Text in Markdown, as the HTML page shows it: no raw HTML gets through (``<`` is
    escaped), no link or image can form (``[``, ``]``, ``!`` escaped: no ``javascript:``
    link, no remote image), no emphasis or code from a name's ``_`` or ``*``, table pipes
    stay cells, and a newline in a description cannot start a heading or a list (lines are
    joined)."""
    t = " ".join(html.escape(str(text), quote=False).splitlines())
    t = _MD_SPECIAL.sub(r"\\\1", t)
    return "\\" + t if t[:1] in ("#", "+", "-", "=", ">") else t


def md_cell(c) -> str:
    """A table cell: text, ("verdict", word) or ("link", text, target without extension)."""
    if isinstance(c, tuple) and c[0] == "verdict":
        return f"**{VERDICT_WORD[c[1]]}**"
    if isinstance(c, tuple) and c[0] == "link":
        return f"[{md_escape(c[1])}]({c[2]}.md)"
    return md_escape(c)


def to_markdown(blocks: Sequence[tuple]) -> str:
    out: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + md_escape(b[2]))
        elif kind == "p":
            out.append(md_escape(b[1]))
        elif kind == "list":
            out.append("\n".join(f"- {md_escape(x)}" for x in b[1]))
        elif kind == "table":
            head, rows = b[1], b[2]
            lines = ["| " + " | ".join(md_escape(h) for h in head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "figure":
            out.append(f"![{md_escape(b[2])}](figures/{b[1]})")
        elif kind == "code":
            out.append("```toml\n" + b[1] + "\n```")
        elif kind == "verdict":
            out.append(f"**Verdict: {VERDICT_WORD[b[1]]}** — {md_escape(b[2])}")
    return "\n\n".join(out) + "\n"


_ENV = jinja2.Environment(loader=jinja2.PackageLoader("tunebook.report", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)


def to_html(blocks: Sequence[tuple], title: str, figure_dir: Path) -> str:
    """Figures are read from ``figure_dir`` and embedded as data: URIs."""
    items = []
    for b in blocks:
        if b[0] == "figure":
            data = base64.b64encode((figure_dir / b[1]).read_bytes()).decode()
            items.append(("figure", f"data:image/png;base64,{data}", b[2]))
        else:
            items.append(b)
    return _ENV.get_template("report.html.j2").render(title=title, blocks=items, verdict_word=VERDICT_WORD)
