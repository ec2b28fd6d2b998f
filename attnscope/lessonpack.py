"""`attnscope lesson-pack -o DIR`: the /lesson page's examples as a folder of static HTML.

The numbers come from the server's own function (app.payloads.lesson_data, on a Runner made here
without a server), the charts from app.figures. The folder:

    index.html        the lesson: its text with the model's numbers, every chart inline
    <chart>.html      one page per chart, linked to the lesson and to each other
    plotly.min.js     plotly.js, written once; every page loads it with <script src="plotly.min.js">
    lesson.json       the numbers: the same dict as the /lesson page's initial data
    <chart>.png/.svg  with --images (kaleido, else headless Chromium)

It opens from file:// with no network: no CDN, no require.js.
"""

import html
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from app import figures
from app.engine import DEFAULT_MODEL, loaders
from app.engine.model import default_cache_dir
from app.http import dumps
from app.lesson import quoted
from app.payloads import lesson_data
from app.runs import Runner
from app.settings import Settings
from app.style import legend, token_label, token_note
from app.vendor import plotly_path

from .images import NoRenderer, render
from .progress import Progress
from .result import Result, registry as shared_registry

N_CHARTS = 7  # adjectives arrows + heatmap, mole, two towers, head finder, ablation


class PackError(ValueError):
    pass


# --- the pack's contents --------------------------------------------------------------------------------

@dataclass
class Chart:
    name: str  # file stem: name.html, name.png
    title: str
    figure: go.Figure
    section: str = ""
    image: str | None = None  # file name, once rendered


@dataclass
class Section:
    id: str
    title: str
    # ("p", text) | ("chips", tokens) | ("chart", Chart) | ("list", [text or (bold, text)]) | ("table", {head, rows})
    # | ("card", {title, lines, table, after}): one head's math, as app/lesson.py lays it out
    blocks: list = field(default_factory=list)


def build_charts(runner, model, lesson: dict) -> dict[str, Chart]:
    """One plotly figure per chart, from the lesson's numbers and its (cached) runs."""
    f, best = lesson["fluffy"], lesson["fluffy"]["card"]  # the head whose computation the lesson shows
    fluffy = Result(runner.run(model, f["text"]), f["text"], best["layer"], best["head"])
    charts = [
        Chart("adjectives-arrows",
              f"Adjectives → {quoted(f['tokens'][f['query']]['text'])}: layer {best['layer']}, head {best['head']}",
              figures.arrows(fluffy, best["layer"], best["head"], f["query"])),
        Chart("adjectives-heatmap", f"Every token of “{f['text']}” in layer {best['layer']}, head {best['head']}",
              figures.heatmap(fluffy, best["layer"], best["head"])),
        Chart("mole-similarity", "“mole” in three sentences: cosine similarity layer by layer",
              figures.similarity_by_layer(lesson["mole"], lesson["mole_sentences"])),
    ]
    h = lesson["tower_head"]  # the head that carries the word before 'tower' in both sentences
    for i, t in enumerate(lesson["towers"]):
        r = Result(runner.run(model, t["text"]), t["text"], h["layer"], h["head"])
        charts.append(Chart(f"tower-{i + 1}-arrows", f"“{t['text']}”: layer {h['layer']}, head {h['head']}",
                            figures.arrows(r, h["layer"], h["head"], t["query"])))
    charts.append(Chart("head-finder", "The head finder's specialists", figures.specialists(lesson["head_finder"], model.id)))
    charts.append(Chart("france-ablation", f"“{lesson['france']['text']}”, with the heads that move the most of ‘France’ switched off",
                        figures.ablation(lesson["france"]["ablated"])))
    for c in charts:
        if c.name.endswith("-arrows"):  # the lesson's short sentences: room for the title, one width for all
            c.figure.update_layout(width=max(c.figure.layout.width or 0, 800), height=320)
    return {c.name: c for c in charts}


def lesson_sections(lesson: dict, charts: dict[str, Chart]) -> list[Section]:
    """The lesson's text (lesson["sections"], app/lesson.py's: the words of /lesson) around its charts."""
    t = lesson["sections"]
    ps = lambda section, key="p": [("p", p) for p in t[section].get(key, [])]  # noqa: E731
    a = t["adjectives"]
    sections = [
        Section("tokens", t["tokens"]["title"], ps("tokens") + [("chips", lesson["fluffy"]["tokens"]),
                                                                ("list", t["tokens"]["vectors"])]),
        Section("adjectives", a["title"], ps("adjectives") + [("card", a["card"])] + ps("adjectives", "p_card")
                + [("chart", charts["adjectives-arrows"])] + ps("adjectives", "p_sink") + [("table", a["table"])]
                + ps("adjectives", "p_end") + [("chart", charts["adjectives-heatmap"])]),
        Section("mole", t["mole"]["title"], [("list", t["mole"]["sentences"]), ("chart", charts["mole-similarity"])] + ps("mole")),
        Section("towers", t["towers"]["title"], [b for i, caption in enumerate(t["towers"]["captions"])
                                                 for b in (("chart", charts[f"tower-{i + 1}-arrows"]), ("p", caption))]
                + ps("towers")),
        Section("heads", t["heads"]["title"], ps("heads")
                + [("list", [(name, f": {head} — {formula}") for name, head, formula in t["heads"]["list"]]),
                   ("chart", charts["head-finder"])] + ps("heads", "p_end")),
        Section("ablation", t["ablation"]["title"], [("chart", charts["france-ablation"])] + ps("ablation")),
    ]
    for s in sections:
        for kind, value in s.blocks:
            if kind == "chart":
                value.section = s.id
    return sections


# --- HTML ---------------------------------------------------------------------------------------------

CSS = """
:root { --fg: #1d1f24; --bg: #f7f7fa; --panel: #fff; --muted: #60656f; --line: #dcdde3; --accent: #d4572a;
  --chip: #eef0f5; --link: #2b59c3; color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); }
header, main, footer { max-width: 940px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 24px; }
h1 { font-size: 1.7rem; line-height: 1.25; margin: .2rem 0 .4rem; }
h2 { font-size: 1.25rem; margin: 0 0 .6rem; }
a { color: var(--link); }
.muted, .tagline { color: var(--muted); }
.crumbs { font-size: .95rem; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 18px 22px; margin: 18px 0; }
nav.toc ol { margin: .3rem 0; padding-left: 1.4rem; columns: 2; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; margin: .3rem 0 .8rem; }
.chip { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--chip);
  border: 1px solid var(--line); border-radius: 6px; padding: 1px 8px; white-space: pre; }
.chip sub { color: var(--muted); font-size: .7em; margin-left: 3px; }
.legend { color: var(--muted); font-size: .8rem; margin: -.5rem 0 .8rem; }
figure { margin: .8rem 0; }
.chart { overflow-x: auto; }
figcaption { font-size: .9rem; color: var(--muted); }
ul.plain { list-style: none; padding-left: 0; }
.pager { display: flex; justify-content: space-between; gap: 12px; margin: 18px 0; }
footer { padding-bottom: 32px; font-size: .92rem; }
code { background: var(--chip); padding: 0 4px; border-radius: 4px; }
.card { border: 1px solid var(--line); border-left: 4px solid var(--accent); border-radius: 8px; padding: 8px 14px; margin: .8rem 0; }
.card h3 { font-size: 1rem; margin: .2rem 0 .5rem; }
.math-line { margin: .25rem 0; }
.math-line code { margin-right: .4rem; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: .5rem 0; font-size: .92rem; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { color: var(--muted); font-weight: 600; }
.no-plotly .chart::before { content: "plotly.min.js did not load: keep it in the same folder as this page.";
  color: var(--accent); display: block; }
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="attnscope lesson-pack">
<title>{esc(title)}</title>
<style>{CSS}</style>
<script src="plotly.min.js"></script>
<script>window.Plotly || document.documentElement.classList.add("no-plotly");</script>
</head>
<body>
{body}
<script>document.body.dataset.ready = "1";</script>
</body>
</html>
"""


def figure_div(chart: Chart, div_id: str) -> str:
    return chart.figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                config={"displaylogo": False, "responsive": True})


def table_html(t: dict) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in t["head"])
    rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in t["rows"])
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def render_blocks(blocks: list, in_index: bool) -> str:
    out = []
    for kind, value in blocks:
        if kind == "p":
            out.append(f"<p>{esc(value)}</p>")
        elif kind == "list":
            items = (f"<li><b>{esc(x[0])}</b>{esc(x[1])}</li>" if isinstance(x, tuple) else f"<li>{esc(x)}</li>" for x in value)
            out.append('<ul class="plain">' + "".join(items) + "</ul>")
        elif kind == "table":
            out.append(table_html(value))
        elif kind == "card":
            lines = lambda ls: "".join(f'<div class="math-line"><code>{esc(f)}</code> <span>{esc(w)}</span></div>' for f, w in ls)  # noqa: E731
            out.append(f'<div class="card"><h3>{esc(value["title"])}</h3>{lines(value["lines"])}{table_html(value["table"])}'
                       f'{lines(value["after"])}</div>')
        elif kind == "chips":
            out.append('<div class="chips">' + "".join(
                f'<span class="chip" title="token {i}, id {t["id"]}{esc(chr(10) + token_note(t)) if token_note(t) else ""}">'
                f'{esc(token_label(t))}<sub>{i}</sub></span>' for i, t in enumerate(value)) + "</div>")
            if marks := legend([token_label(t) for t in value]):  # "· = a space before the word"
                out.append(f'<p class="legend">{esc(marks)}</p>')
        elif kind == "chart" and in_index:
            image = f' · <a href="{esc(value.image)}">{esc(value.image.rsplit(".", 1)[1].upper())}</a>' if value.image else ""
            out.append(f'<figure><div class="chart">{figure_div(value, value.name)}</div><figcaption>{esc(value.title)} · '
                       f'<a href="{esc(value.name)}.html">open on its own page</a>{image}</figcaption></figure>')
    return "\n".join(out)


def model_line(lesson: dict) -> str:
    m = lesson["model"]
    return (f"Every number here was computed by {m['name']} (<code>{esc(m['id'])}</code>, {m['n_layers']} layers × "
            f"{m['n_heads']} heads) running in numpy: the same numbers as the app's <code>/lesson</code> page.")


def index_html(lesson: dict, sections: list[Section], charts: list[Chart]) -> str:
    toc = "".join(f'<li><a href="#{esc(s.id)}">{esc(s.title.split(". ", 1)[1])}</a></li>' for s in sections)
    body = [f"""<header>
<h1>How attention moves meaning between tokens</h1>
<p class="tagline">A short lesson, shown with a real model's numbers, including where it differs from the textbook.</p>
<p class="muted">{model_line(lesson)}</p>
<nav class="toc" aria-label="Sections"><ol>{toc}</ol></nav>
</header>
<main>"""]
    for s in sections:
        body.append(f'<section id="{esc(s.id)}">\n<h2>{esc(s.title)}</h2>\n{render_blocks(s.blocks, True)}\n</section>')
    chart_list = "".join(f'<li><a href="{esc(c.name)}.html">{esc(c.title)}</a>'
                         + (f' (<a href="{esc(c.image)}">{esc(c.image)}</a>)' if c.image else "") + "</li>" for c in charts)
    body.append(f"""</main>
<footer>
<h2>Every chart on its own page</h2>
<ol>{chart_list}</ol>
<p>The numbers: <a href="lesson.json">lesson.json</a>. Made by <code>attnscope lesson-pack</code>; with the app running
(<code>attnscope serve</code>), the same lesson is live at <code>/lesson</code>, and every head opens in the explorer.</p>
</footer>""")
    return page("attnscope lesson: how attention moves meaning between tokens", "\n".join(body))


def chart_html(lesson: dict, chart: Chart, sections: list[Section], charts: list[Chart], renderer: str | None) -> str:
    i = charts.index(chart)
    section = next(s for s in sections if s.id == chart.section)
    prev, after = (charts[i - 1] if i else None), (charts[i + 1] if i + 1 < len(charts) else None)
    prev_link = f'<a href="{esc(prev.name)}.html">← {esc(prev.title)}</a>' if prev else "<span></span>"
    next_link = f'<a href="{esc(after.name)}.html">{esc(after.title)} →</a>' if after else "<span></span>"
    image = (f'<p>Static image: <a href="{esc(chart.image)}">{esc(chart.image)}</a> (made with {esc(renderer)}).</p>'
             if chart.image else "")
    body = f"""<header>
<p class="crumbs"><a href="index.html">← The lesson</a> · {esc(section.title)} · chart {i + 1} of {len(charts)}</p>
<h1>{esc(chart.title)}</h1>
<p class="muted">{model_line(lesson)}</p>
</header>
<main>
<section>
<figure><div class="chart">{figure_div(chart, "chart")}</div></figure>
{render_blocks([b for b in section.blocks if b[0] != "chart"], False)}
{image}
</section>
<nav class="pager" aria-label="Charts">{prev_link}{next_link}</nav>
</main>"""
    return page(f"{chart.title} · attnscope lesson", body)


# --- building the folder ----------------------------------------------------------------------------------

def writable_dir(out: Path, what: str = "the lesson pack", error: type[Exception] | None = None) -> Path:
    """Create DIR and prove it can be written, before any long work (error: the caller's exception class)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".attnscope-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise (error or PackError)(f"cannot write {what} to {out}: {e.strerror or e}") from None
    return out


def converted(registry, model_id: str) -> bool:
    """Whether the model's float32 weights are already stored (else its first load converts them: seconds)."""
    src = registry.sources[model_id]
    if src.path is None or not src.path.exists():
        return True  # the load fails at once, with its own message
    base = Path(registry.cache_dir) if registry.cache_dir is not None else default_cache_dir()
    return (base / f"{model_id}-{loaders.source_key(src.path)}" / "meta.json").exists()


def build(out, model_id: str | None = None, cache_dir=None, images: str | None = None, quiet: bool = False) -> dict:
    """Write the pack into out; returns {"dir", "files", "model", "renderer"}. images: None, "png" or "svg"."""
    out = writable_dir(Path(out))
    registry = shared_registry(cache_dir)  # the notebook API's and `attnscope export`'s registry
    model_id = registry.resolve(model_id)  # an unknown id fails here, before the bar
    total = 4 + N_CHARTS * (2 if images else 1)
    files: list[str] = []
    with Progress(total, quiet=quiet) as p:
        p.next(f"loading {model_id}" if converted(registry, model_id)
               else f"loading {model_id}: converting its weights to float32 (first load only)")
        model = registry.get(model_id)
        if not model.cfg.causal:
            raise PackError(f"{model_id} is an encoder ({model.cfg.architecture}), not a causal language model: the "
                            f"lesson predicts next tokens and switches heads off; use a causal model such as {DEFAULT_MODEL}")
        p.next(f"computing the lesson's examples with {model_id}")
        runner = Runner(registry, Settings.model_construct())  # the caches' defaults: no server settings needed
        lesson = lesson_data(runner, model_id)
        charts = build_charts(runner, model, lesson)
        sections = lesson_sections(lesson, charts)
        chart_list = [c for s in sections for kind, c in s.blocks if kind == "chart"]
        assert len(chart_list) == N_CHARTS == len(charts), "every chart appears once in the lesson"

        p.next("writing plotly.min.js and lesson.json")
        shutil.copyfile(plotly_path(), out / "plotly.min.js")
        (out / "lesson.json").write_bytes(dumps(lesson))
        files += ["plotly.min.js", "lesson.json"]

        renderer = None
        if images:
            for c in chart_list:
                p.next(f"rendering {c.name}.{images}")
                try:
                    blob, renderer = render(c.figure, images)
                except NoRenderer as err:
                    raise PackError(str(err)) from None
                c.image = f"{c.name}.{images}"
                (out / c.image).write_bytes(blob)
                files.append(c.image)

        for c in chart_list:
            p.next(f"writing {c.name}.html")
            (out / f"{c.name}.html").write_text(chart_html(lesson, c, sections, chart_list, renderer), encoding="utf-8")
            files.append(f"{c.name}.html")
        p.next("writing index.html")
        (out / "index.html").write_text(index_html(lesson, sections, chart_list), encoding="utf-8")
        files.insert(0, "index.html")
    return {"dir": out, "files": files, "model": model_id, "charts": [c.name for c in chart_list], "renderer": renderer}
