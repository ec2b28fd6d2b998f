"""`attnscope lesson-pack -o DIR`: the lesson as static pages that open offline, with the server's numbers.

The pack is built twice per module, at once: in-process through cli.main, and by the real console
script (with --images) in a subprocess whose stderr is a pipe, so tqdm draws no bar there."""

import contextlib
import html
import io
import json
import os
import re
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app.lesson import PATTERNS, paragraphs
from attnscope import cli, lessonpack
from tests.e2e.conftest import ARTIFACTS, Page

CONSOLE_SCRIPT = Path(sys.executable).parent / "attnscope"


def env(cache_dir):
    return {**os.environ, "ATTNSCOPE_CACHE_DIR": cache_dir, "ATTNSCOPE_MODELS": "",
            "ATTNSCOPE_DEFAULT_MODEL": "smollm2-135m-instruct"}


@pytest.fixture(scope="module")
def script_run(smol, cache_dir, tmp_path_factory):
    """The console script with --images, started first: it renders in Chromium while the rest runs."""
    if not CONSOLE_SCRIPT.exists():
        pytest.fail(f"no console script at {CONSOLE_SCRIPT}: run `make test` (pip install -e .)", pytrace=False)
    out = tmp_path_factory.mktemp("pack-script")
    proc = subprocess.Popen([str(CONSOLE_SCRIPT), "lesson-pack", "-o", str(out), "--images"], env=env(cache_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield out, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def pack(script_run, smol, cache_dir, tmp_path_factory):
    """The pack written in-process -> (dir, stdout, stderr)."""
    out = tmp_path_factory.mktemp("pack") / "lesson"  # a folder that does not exist yet
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert cli.main(["lesson-pack", "-o", str(out), "--cache-dir", cache_dir]) == 0, stderr.getvalue()
    return out, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def server_lesson(client):
    """The lesson's data as the server's /lesson page carries it (its inline initial JSON)."""
    r = client.get("/lesson")
    assert r.status_code == 200
    m = re.search(r'<script type="application/json" id="initial">(.*?)</script>', r.text, re.S)
    return json.loads(html.unescape(m.group(1)))["lesson"]


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.scripts, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a.get("src"))
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(a[key])

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Links:
    p = Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def visible_text(path: Path) -> str:
    """The page's text without its scripts and styles (what a reader sees)."""
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", path.read_text(encoding="utf-8"), flags=re.S)
    raw = re.sub(r"</?(b|a|code|sub)\b[^>]*>", "", raw)  # inline tags: no space
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


def test_files_and_links(pack):
    out, stdout, _ = pack
    pages = sorted(p.name for p in out.glob("*.html"))
    assert len(pages) == 1 + lessonpack.N_CHARTS and "index.html" in pages
    assert f"wrote {out}" in stdout and "7 chart pages" in stdout
    index = parse(out / "index.html")
    listed = {link.split("#")[0] for link in index.links if not link.startswith("#")}
    assert {p for p in pages if p != "index.html"} <= listed and {"plotly.min.js", "lesson.json"} <= listed
    for page in pages:  # every file any page links to exists, and every link is relative
        for link in parse(out / page).links:
            assert not re.match(r"^[a-z]+:|^//|^/", link), (page, link)
            target = link.split("#")[0]
            assert not target or (out / target).exists(), (page, link)
    for page in pages:
        if page != "index.html":
            assert "index.html" in parse(out / page).links  # back to the lesson


def test_plotly_js_once_and_relative(pack):
    import plotly

    out, _, _ = pack
    lib = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert (out / "plotly.min.js").read_bytes() == lib.read_bytes()
    for page in out.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        p = parse(page)
        assert "plotly.min.js" in p.scripts, page.name
        assert [s for s in p.scripts if s] == ["plotly.min.js"], page.name  # no other external script
        assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", text), page.name
        assert "require.js" not in text and "cdn.plot.ly" not in text
        assert len(text) < 200_000, page.name  # plotly.js is not inlined
        assert text.startswith("<!doctype html>") and '<html lang="en">' in text and text.rstrip().endswith("</html>")


def test_numbers_are_the_servers(pack, server_lesson):
    out, _, _ = pack
    lesson = server_lesson
    assert json.loads((out / "lesson.json").read_text()) == lesson  # every number, as /lesson computes it

    text = visible_text(out / "index.html")
    pct = lambda x: f"{round(100 * x)}%"  # noqa: E731
    f = lesson["fluffy"]
    assert f"reads “{f['text']}” as {len(f['tokens'])} tokens" in text
    c = f["card"]
    assert f"How layer {c['layer']}, head {c['head']} computes the update of ‘creature’" in text
    for k, row in zip(c["keys"], lesson["sections"]["adjectives"]["card"]["table"]["rows"]):  # the card's table, cell by cell
        assert " ".join(row) in text and f"{k['dot']:.2f}" in row[1] and row[-1] == pct(k["share"])
    first = c["keys"][0]
    assert f"‘creature’ puts {pct(first['weight'])} of its weight on ‘a’, the first token" in text
    assert f"so it gives {pct(first['share'])} of what moves" in text
    sink = f["first_token"]
    assert f"the first token takes {pct(sink['weight'])} of the attention" in text
    assert f"the median head puts {pct(sink['query_weight'])} of its weight on the first token" in text
    for h in f["heads"]:  # the heads ranked by what they move from the adjectives, with their numbers
        assert f"L{h['layer']}H{h['head']} {pct(h['moved'])} {pct(h['weight'])}" in text
    last = lesson["mole"]["similarity"][-1]
    assert f"the animal and the skin mark {last[0][2]:.2f}" in text
    assert "1. the animal: “American shrew mole”" in text
    t = lesson["tower_head"]
    assert f"layer {t['layer']}, head {t['head']} does it in both" in text
    for x, w in zip(lesson["towers"], t["weight"]):
        assert f"in layer {t['layer']}, head {t['head']}, ‘tower’ puts {pct(w)} of its weight" in text
    for row in lesson["head_finder"]["rows"]:  # each pattern's top head, by the sink-aware score, with its readings
        h = row["heads"][0]
        assert f"{PATTERNS[row['pattern']]}: layer {h['layer']}, head {h['head']} ({h['score']:.2f};" in text
        assert f"what moved: {h['moved']:.2f})" in text
    fr = lesson["france"]
    orig, now = fr["ablated"]["original"][-1], fr["ablated"]["predictions"][-1]
    assert f"the model answers ‘{orig[0]['text'].strip()}’ ({pct(orig[0]['prob'])})" in text
    assert f"its top answer becomes ‘{now[0]['text'].strip()}’ ({pct(now[0]['prob'])})" in text
    assert ", ".join(f"L{h['layer']}H{h['head']} ({pct(h['moved'])})" for h in fr["heads_to_france"][:3]) in text

    # the words are the page's: one source (app/lesson.py) for /lesson and the pack
    for section in lesson["sections"].values():
        assert section["title"] in text
        for p in paragraphs(section):
            assert " ".join(p.split()) in text, p
        if "hint" in section:  # what hovering does: the live page's only
            assert section["hint"] not in text
    # a chart page repeats its section's text
    assert f"its top answer becomes ‘{now[0]['text'].strip()}’" in visible_text(out / "france-ablation.html")


def test_console_script_progress_and_images(script_run):
    out, proc = script_run
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert stderr == ""  # not a terminal: tqdm draws no bar, so a pipe or a CI log gets no \r frames
    assert "Chromium" in stdout or "kaleido" in stdout  # says which renderer made the images
    for name in ("adjectives-arrows", "france-ablation"):
        blob = (out / f"{name}.png").read_bytes()
        assert blob[:8] == b"\x89PNG\r\n\x1a\n"
        w, h = struct.unpack(">II", blob[16:24])
        assert w >= 600 and h >= 400
        assert f"{name}.png" in parse(out / f"{name}.html").links and f"{name}.png" in parse(out / "index.html").links


def one_line_error(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnscope: error: "), captured.err
    return lines[0]


def test_errors_are_one_line(smol, minilm, cache_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = one_line_error(capsys, ["lesson-pack", "-o", str(blocker / "lesson"), "--cache-dir", cache_dir])
    assert f"cannot write the lesson pack to {blocker / 'lesson'}" in err
    err = one_line_error(capsys, ["lesson-pack", "-o", str(tmp_path / "x"), "--model", "nope", "--cache-dir", cache_dir])
    assert "unknown model 'nope'" in err and "smollm2-135m-instruct" in err
    err = one_line_error(capsys, ["lesson-pack", "-o", str(tmp_path / "y"), "--model", "all-minilm-l6-v2",
                                  "--cache-dir", cache_dir])
    assert "not a causal language model" in err and "smollm2-135m-instruct" in err


def test_no_image_renderer_names_what_to_install(smol, cache_dir, tmp_path, capsys, monkeypatch):
    from attnscope import images

    monkeypatch.setattr(images, "_kaleido", lambda fig, fmt: None)
    monkeypatch.setattr(images, "CHROMIUM", str(tmp_path / "no-chromium"))
    assert cli.main(["lesson-pack", "-o", str(tmp_path / "p"), "--images", "--cache-dir", cache_dir]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("attnscope: error: PNG export needs kaleido (pip install kaleido)") and "chromium" in err[-1]
    assert len(err) == 1  # capsys is not a terminal: no bar, only the one error


def test_help_documents_the_pack(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["lesson-pack", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for words in ("index.html", "plotly.min.js", "file://", "--images", "kaleido", "Chromium", "causal", "--quiet",
                  "lesson.json"):
        assert words in text, words


def open_offline(browser, url: str) -> tuple[Page, list[str]]:
    """A page whose every non-file request is aborted (and recorded)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    tried = []

    def route(r):
        if r.request.url.startswith("file:"):
            return r.continue_()
        tried.append(r.request.url)
        return r.abort()

    ctx.route("**/*", route)
    page = Page(ctx.new_page())
    page.goto(url)
    page.wait_for_selector(".main-svg", timeout=30000)
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    return page, tried


def test_opens_offline_in_chromium(pack, server_lesson, browser):
    out, _, _ = pack
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page, tried = open_offline(browser, (out / "index.html").as_uri())
    try:
        assert page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length") == lessonpack.N_CHARTS
        assert page.evaluate("() => !document.documentElement.classList.contains('no-plotly')")
        page.screenshot(path=str(ARTIFACTS / "lessonpack-index.png"), full_page=True)
        assert page.errors == [] and tried == []
    finally:
        page.context.close()

    page, tried = open_offline(browser, (out / "france-ablation.html").as_uri())
    try:
        bars = page.evaluate("() => document.getElementById('chart').data.map((t) => ({name: t.name, y: t.y}))")
        fr = server_lesson["france"]["ablated"]
        orig = {p["id"]: p["prob"] for p in fr["original"][-1]}
        assert bars[0]["name"] == "every head on"
        assert max(y for y in bars[0]["y"] if y is not None) == max(orig.values())  # the chart draws the server's numbers
        page.screenshot(path=str(ARTIFACTS / "lessonpack-chart.png"), full_page=True)
        assert page.errors == [] and tried == []
        page.click("text=← The lesson")
        page.wait_for_selector(".main-svg")
        assert page.url.endswith("/index.html")
    finally:
        page.context.close()


def test_first_load_is_announced(smol, cache_dir, tmp_path):
    """The step label says when a load will convert the weights (the long first load)."""
    from app.engine import Registry

    assert lessonpack.converted(Registry.from_env(extra="", cache_dir=cache_dir), "smollm2-135m-instruct")
    assert not lessonpack.converted(Registry.from_env(extra="", cache_dir=tmp_path), "smollm2-135m-instruct")
