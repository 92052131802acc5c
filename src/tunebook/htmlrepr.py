"""How tunebook's records look in a notebook: small HTML tables (``_repr_html_``) for a
study, a run's outcome, a study's analysis and a verdict. Pure: strings from records,
every value escaped; nothing here imports the records' modules (they import this one)."""

from __future__ import annotations

from html import escape
from typing import Any, Iterable, Sequence

_STYLE = "border-collapse:collapse;text-align:left"
_COLOURS = {"supported": "#1a7f37", "refuted": "#cf222e", "inconclusive": "#9a6700"}


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    cap = f"<caption style='text-align:left'><b>{escape(caption)}</b></caption>" if caption else ""
    th = "".join(f"<th style='padding:2px 8px'>{escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table style='{_STYLE}'>{cap}<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return escape(f"{v:.4g}")
    return escape(str(v))


def verdict_word(word: str) -> str:
    return f"<b style='color:{_COLOURS.get(word, 'inherit')}'>{escape(word.upper())}</b>"


def spec_html(spec, model_epochs: int) -> str:
    """A study file: what it trains and what it tests."""
    configs = spec.configs()
    rows = [("dataset", spec.dataset), ("seeds", ", ".join(map(str, spec.seeds))),
            ("trials", f"{len(configs)} ({len({c.config_id for c in configs})} configurations)"),
            ("model-epochs", model_epochs), ("grid", "; ".join(f"{k} = {list(v)}" for k, v in spec.grid) or "—"),
            ("search", f"{spec.search.trials} proposals, sampler {spec.search.sampler}" if spec.search else "—"),
            ("keep", spec.keep)]
    html = table(["", ""], rows, caption=f"study {spec.name}" + (f": {spec.title}" if spec.title != spec.name else ""))
    if spec.hypotheses:
        html += table(["hypothesis", "kind", "says"], [(h.id, h.kind, h.says) for h in spec.hypotheses])
    return html


def outcome_html(o) -> str:
    """What a run did."""
    from collections import Counter

    counts = Counter(r.result.status for r in o.runs)
    rows = [("folder", o.folder), ("trained by this call", o.trained), ("already done", o.skipped),
            ("stored runs", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"),
            ("seconds", round(o.seconds, 1))]
    if o.stopped_by_budget:
        rows.append(("stopped", "budget spent: run the same call to go on"))
    if o.aborted:
        rows.append(("aborted", o.aborted))
    return table(["", ""], rows, caption=f"{o.spec.name}: run outcome")


def verdict_html(v) -> str:
    return (f"<p>{verdict_word(v.verdict)} — <b>{escape(v.hypothesis.id)}</b>: {escape(v.hypothesis.says)}<br>"
            f"<small>{escape(v.detail)}</small></p>")


def analysis_html(a) -> str:
    """A study's analysis: its verdicts, and its best configurations."""
    parts = [f"<h4>{escape(a.spec.title or a.spec.name)}</h4>",
             f"<p>{len(a.runs)} runs, {len(a.configs)} configurations, metric {escape(a.spec.metric)}.</p>"]
    if a.verdicts:
        parts.append(table(["hypothesis", "verdict", "effect", "95 % interval", "p", "survives Holm"],
                           [(v.hypothesis.id, v.verdict.upper(), v.effect, f"[{v.lo:.4g}, {v.hi:.4g}]", v.p,
                             "yes" if a.survives_holm(v.hypothesis.id) else "no") for v in a.verdicts],
                           caption="verdicts"))
    if a.winners is not None:
        w, m = a.winners, a.winners.metric
        rows = [(role, c.label, c.stats[m].mean if m in c.stats else float("nan"), len(c.seeds))
                for role, c in (("highest mean", w.accuracy), ("fewest parameters as good", w.fewest_params),
                                ("fastest as good", w.fastest), ("practical (knee)", w.practical))]
        parts.append(table(["", "configuration", f"mean {m}", "seeds"], rows, caption="best configurations"))
    return "".join(parts)
