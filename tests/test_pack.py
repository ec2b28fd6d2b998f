"""`attnscope pack URL -o DIR`: one page at one state as a folder that opens offline, with the server's
page and the server's numbers; and the bundler that turns the page's ES modules into a classic script.
(The folder opened in Chromium from file://: tests/e2e/test_pack.py.)"""

import html
import io
import json
import posixpath
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from attnscope import cli, pack
from app.templating import ROOT

SERVER = "http://127.0.0.1:8000"  # named in the URLs, never contacted: the pack computes the numbers itself
TEXT = "the cat sat on the mat because it was tired"


def json_script(text: str, id_: str):
    m = re.search(rf'<script type="application/json" id="{id_}">(.*?)</script>', text, re.S)
    assert m, id_
    return json.loads(html.unescape(m.group(1)))


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.scripts, self.metas = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        if tag == "meta":
            self.metas.append(a)
        for key in ("href", "src"):
            if a.get(key):
                self.refs.append(a[key])


def tags(text: str) -> Tags:
    t = Tags()
    t.feed(text)
    return t


def write(url: str, out: Path, cache_dir: str, capsys) -> tuple[str, str]:
    assert cli.main(["pack", url, "-o", str(out), "--cache-dir", cache_dir]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    return captured.out, captured.err


@pytest.fixture(scope="module")
def urls(client):
    """One URL per page kind (and an encoder, and a URL that names no server), with states off the defaults."""
    top = client.post("/api/predictions", json={"text": TEXT, "top_k": 10}).json()["predictions"][6]
    q = lambda **kw: urlencode(kw, doseq=True)  # noqa: E731
    return {
        "explorer": f"{SERVER}/?" + q(text=TEXT, layer=4, head=5, token=6, heads="5,1", dir="in", t="1.5", off="3.1",
                                      at=6, target=top[1]["id"], vs=top[0]["id"]),
        "explorer-encoder": "/?" + q(text="the river bank was muddy", model="all-minilm-l6-v2", layer=1, head=7, token=3),
        "explain": f"{SERVER}/explain?" + q(text=TEXT, layer=1, head=2, token=5, step=4, all=1),
        "compare": f"{SERVER}/compare?" + q(word="bank", s=["we sat on the river bank", "she paid at the bank"]),
        "lens": f"{SERVER}/lens?" + q(text="the capital of France is"),
    }


@pytest.fixture(scope="module")
def packs(urls, cache_dir, tmp_path_factory):
    """Every URL packed in-process through cli.main -> {name: (dir, stdout)}."""
    out = {}
    for name, url in urls.items():
        d = tmp_path_factory.mktemp("pack") / name  # not there yet: the pack makes it
        stdout, stderr = io.StringIO(), io.StringIO()
        real = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = stdout, stderr
        try:
            code = cli.main(["pack", url, "-o", str(d), "--cache-dir", cache_dir])
        finally:
            sys.stdout, sys.stderr = real
        assert code == 0, stderr.getvalue()
        assert stderr.getvalue() == ""  # not a terminal: no bar
        out[name] = (d, stdout.getvalue())
    return out


def live_page(client, url: str):
    parts = urlsplit(url)
    r = client.get(parts.path + (f"?{parts.query}" if parts.query else ""))
    assert r.status_code == 200
    return r.text


# --- the folder ----------------------------------------------------------------------------------------

def test_each_page_writes_a_folder_that_needs_no_network(packs, urls):
    import plotly

    lib = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    for name, (d, stdout) in packs.items():
        page = name.split("-")[0]
        assert f"wrote {d}: index.html ({page}, " in stdout and str(d / "index.html") in stdout
        for f in ("index.html", "app.js", "offline.js", "offline.css", "plotly.min.js", "static/css/app.css"):
            assert (d / f).is_file(), (name, f)
        assert (d / "plotly.min.js").read_bytes() == lib
        text = (d / "index.html").read_text(encoding="utf-8")
        t = tags(text)
        # code only from the folder, as classic scripts: no module (file:// refuses them), nothing inline
        assert [s.get("src") for s in t.scripts if s.get("type") != "application/json"] == ["offline.js", "app.js", "plotly.min.js"]
        assert all(s.get("src") or s.get("type") == "application/json" for s in t.scripts)
        assert not any(s.get("type") == "module" for s in t.scripts)
        csp = next(m["content"] for m in t.metas if m.get("http-equiv") == "Content-Security-Policy")
        assert "connect-src 'none'" in csp and "script-src 'self';" in csp and "default-src 'self'" in csp
        assert not re.search(r"https?:|\*|data: *;|'unsafe-eval'", csp.split("img-src")[0])
        for ref in t.refs:  # every reference is a file of the folder, or a link to the server the URL named
            if ref.startswith(SERVER + "/") and urls[name].startswith(SERVER):
                continue
            assert not re.match(r"^[a-z]+:|^//", ref), (name, ref)
            target = ref.split("#")[0].split("?")[0]
            if target.startswith("/"):  # a URL that names no server: the app's own links stay, offline.js catches them
                assert not urls[name].startswith(SERVER) and not target.startswith("/static"), (name, ref)
                continue
            assert not target or (d / target).is_file(), (name, ref)


def test_the_page_is_the_servers_at_that_state(packs, urls, client):
    """The data inline is the live page's for the same URL, and so is the page's body."""
    for name, (d, _) in packs.items():
        text, live = (d / "index.html").read_text(encoding="utf-8"), live_page(client, urls[name])
        assert json_script(text, "initial") == json_script(live, "initial"), name
        main = lambda t: re.search(r"<main\b.*?</main>", t, re.S).group()  # noqa: E731
        assert main(text).replace(f'href="{SERVER}/', 'href="/') == main(live), name  # links go to the server named
        assert re.search(r"<title>(.*?)</title>", text).group(1) == re.search(r"<title>(.*?)</title>", live).group(1)
    state = json_script((packs["explorer"][0] / "index.html").read_text(encoding="utf-8"), "initial")["state"]
    assert (state["layer"], state["head"], state["token"], state["dir"], state["heads"]) == (4, 5, 6, "in", "5,1")


def test_the_answers_are_the_apis(packs, client):
    """What the page asks as it loads (compare, lens; the explorer's explained prediction and its heatmap hover) is answered
    offline with what the API answers to the same body."""
    paths = {}
    for name, (d, _) in packs.items():
        p = json_script((d / "index.html").read_text(encoding="utf-8"), "attnscope-pack")
        paths[name] = [a["path"] for a in p["answers"]]
        for a in p["answers"]:
            r = client.post(a["path"], json=a["body"])
            assert r.status_code == a["status"] == 200, r.text
            assert r.json() == a["answer"], (name, a["path"])
    assert paths == {"explorer": ["/api/head", "/api/attribution"], "explorer-encoder": ["/api/head"], "explain": [],
                     "compare": ["/api/compare", "/api/residual"], "lens": ["/api/lens", "/api/heads", "/api/rollout", "/api/flow"]}
    p = json_script((packs["explorer"][0] / "index.html").read_text(encoding="utf-8"), "attnscope-pack")
    hover, body = p["answers"][0]["body"], p["answers"][1]["body"]
    assert hover["parts"] == ["scores"] and (hover["layer"], hover["head"]) == (4, 5)  # the heatmap hover's second number
    assert body["position"] == 6 and set(body) == {"text", "model", "position", "target", "contrast"}
    assert p["live"].startswith(f"{SERVER}/?") and p["server"] == SERVER and p["keep"] == ["token", "locked", "dir", "heads"]
    assert json_script((packs["explorer-encoder"][0] / "index.html").read_text(encoding="utf-8"), "attnscope-pack")["live"] is None


def test_the_bundle_holds_the_pages_modules_each_once_after_its_imports(packs):
    js = ROOT / "static" / "js"
    entries = {"explorer": "main.js", "explain": "explain.js", "compare": "compare.js", "lens": "lens.js"}
    for name, (d, _) in packs.items():
        app = (d / "app.js").read_text(encoding="utf-8")
        order = re.findall(r"^// ==== static/js/(\S+) ====$", app, re.M)
        assert len(order) == len(set(order)) and order[-1] == entries[name.split("-")[0]]
        assert {"present.js", "print.js", "dom.js"} <= set(order)
        for i, path in enumerate(order):  # the browser's order: a module runs after everything it imports
            src = (js / path).read_text(encoding="utf-8")
            for spec in re.findall(r'^import [^;]*?from "([^"]+)";', src, re.M):
                dep = posixpath.normpath(posixpath.join(posixpath.dirname(path), spec))
                assert dep in order[:i], (name, path, dep)
        assert "import {" not in re.sub(r"//.*|\"[^\"\n]*\"|'[^'\n]*'|`[^`]*`", "", app.split("\n", 3)[3])
        assert not re.search(r"^export ", app, re.M)


# --- errors: one line, exit status 1 ------------------------------------------------------------------

def one_line_error(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnscope: error: "), captured.err
    return lines[0]


NOT_PAGES = [
    ("https://example.com/about", "not an attnscope page URL"),
    (f"{SERVER}/lesson", "attnscope lesson-pack"),
    (f"{SERVER}/embed/heatmap?text=hi", "pack the page it shows"),
    (f"{SERVER}/api/attention", "not an attnscope page URL"),
    ("ftp://example.com/", "not an attnscope page URL"),
    ("example.com/?text=hi", "not an attnscope page URL"),
]
BAD_PARAMS = [
    (f"{SERVER}/?text=hi&model=nope", "unknown model 'nope'"),
    (f"{SERVER}/?text=hi&layer=abc", "layer='abc': not a whole number"),
    (f"{SERVER}/?text=hi&layer=30", "layer 30 is out of range: smollm2-135m-instruct has layers 0-29"),
    (f"{SERVER}/?text=hi&head=9", "head 9 is out of range"),
    (f"{SERVER}/?text=hi&heads=1,12", "head 12 is out of range"),
    (f"{SERVER}/?text=hi&lyer=3", "no parameter 'lyer'"),
    (f"{SERVER}/?text=hi&dir=sideways", "dir='sideways': must be in or out"),
    (f"{SERVER}/?text=hi&measure=loud", "measure='loud': must be weight or moved"),
    (f"{SERVER}/?text=hi&t=0", "t='0': the temperature must be a number from 0.1 to 100"),
    (f"{SERVER}/?text=hi&off=3-1", "off='3-1': must be layer.head pairs"),
    (f"{SERVER}/?text=hi&off=40.1", "layer 40 is out of range"),
    (f"{SERVER}/?text=hi&token=9", "token=9: the text has 1 tokens"),
    (f"{SERVER}/?text=", "the page shows an error at this state"),
    (f"{SERVER}/?text=%FF", "the URL's query cannot be read: text: invalid UTF-8 byte 0xFF"),
    (f"{SERVER}/explain?text=hi&step=0", "step=0: steps count from 1"),
    (f"{SERVER}/compare?word=bank&s=the+river&s=the+sea", "the page shows an error at this state"),
    (f"{SERVER}/lens?text=hi&layer=2", "the lens page has no parameter 'layer'"),
    (f"{SERVER}/?text=hi&cmp=all-minilm-l6-v2&cmpl=2", "the explorer's side-by-side view (cmp, cmpl, cmph) cannot be packed yet"),
    (f"/?text=hi&model=all-minilm-l6-v2&off=1.1", "is an encoder"),
]


@pytest.mark.parametrize("url, message", NOT_PAGES + BAD_PARAMS)
def test_bad_urls_are_one_line_errors(url, message, smol, minilm, cache_dir, tmp_path, capsys):
    err = one_line_error(capsys, ["pack", url, "-o", str(tmp_path / "out"), "--cache-dir", cache_dir])
    assert message in err, err
    if (url, message) in NOT_PAGES:
        assert not (tmp_path / "out").exists()  # refused before any work
    assert not (tmp_path / "out" / "index.html").exists()


def test_an_unwritable_folder_is_one_line(smol, cache_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = one_line_error(capsys, ["pack", f"{SERVER}/?text=hi", "-o", str(blocker / "x"), "--cache-dir", cache_dir])
    assert f"cannot write the pack to {blocker / 'x'}" in err


def test_help_documents_the_pack(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["pack", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for words in ("index.html", "app.js", "offline.js", "plotly.min.js", "file://", "/explain", "/compare", "/lens",
                  "--quiet", "ATTNSCOPE_DEFAULT_MODEL", "forward pass"):
        assert words in text, words


def test_progress_is_lesson_packs_bar_on_a_terminal(smol, cache_dir, tmp_path, monkeypatch, capsys):
    from tests.test_cli import Terminal

    term = Terminal(True)
    monkeypatch.setattr(sys, "stderr", term)
    assert cli.main(["pack", f"{SERVER}/?text=hi+there", "-o", str(tmp_path / "p"), "--cache-dir", cache_dir]) == 0
    frames = term.getvalue().split("\r")[1:]
    assert any("computing the explorer page's data" in f for f in frames)
    assert any("bundling the page's code" in f for f in frames) and any("writing index.html" in f for f in frames)
    assert "5/5" in frames[-1] and "█" * 20 in frames[-1]
    term = Terminal(True)
    monkeypatch.setattr(sys, "stderr", term)
    assert cli.main(["pack", f"{SERVER}/?text=hi+there", "-o", str(tmp_path / "q"), "--cache-dir", cache_dir, "-q"]) == 0
    assert term.getvalue() == ""


# --- the bundler ----------------------------------------------------------------------------------------

TRICKY = r'''// a comment that says
// import { nothing } from "./nowhere.js";
import { a, b as bee,
  c } from "./lib/x.js";
import * as y from "../y.js";
import "./side.js";
/* a block comment:
export const fake = 1;
*/
const s = "import { q } from './q.js';", t = 'export default 1';
const tpl = `
import { r } from "./r.js";
${`nested ${"}"} template`}
export let z = 1;
`;
const re = /export\s+"[`]/g, ratio = a / bee / 2;
export function f() { return { import: 1, export: 2 }.import; }
export async function g() {}
export function* gen() {}
export class K {}
export const k = 1;
const hidden = 2;
export { hidden as shown, tpl };
'''


def test_transform_reads_imports_and_exports_and_leaves_the_rest():
    m = pack.transform("pages/p.js", TRICKY)
    assert m.imports == [("pages/lib/x.js", "names", [("a", "a"), ("b", "bee"), ("c", "c")]),
                         ("y.js", "namespace", [("*", "y")]), ("pages/side.js", "bare", [])]
    assert m.exports == {"f": "f", "g": "g", "gen": "gen", "K": "K", "k": "k", "shown": "hidden", "tpl": "tpl"}
    for kept in ('// import { nothing } from "./nowhere.js";', "export const fake = 1;", "import { q } from './q.js';",
                 'import { r } from "./r.js";', "export let z = 1;", r'/export\s+"[`]/g', "{ import: 1, export: 2 }.import",
                 "function f()", "async function g()", "function* gen()", "class K {}", "const k = 1;"):
        assert kept in m.code, kept
    assert "export {" not in m.code and 'from "./lib/x.js"' not in m.code and "import * as" not in m.code
    assert m.code.count("\n") == TRICKY.count("\n")  # lines kept: an error in app.js points near its source line


@pytest.mark.parametrize("src, message", [
    ("export default 1;\n", "unsupported export"),
    ("export let n = 1;\n", "export let is a live binding"),
    ("export var n = 1;\n", "export var is a live binding"),
    ('export { a } from "./a.js";\n', "re-exports"),
    ("export * from './a.js';\n", "unsupported export"),
    ('import x from "./a.js";\n', "unsupported import"),
    ('import { a } from "plotly";\n', "only relative imports"),
    ('import { a } from "/static/js/a.js";\n', "only relative imports"),
    ('import { a } from "../../a.js";\n', "leaves static/js"),
    ('const m = await import("./a.js");\n', "dynamic import()"),
    ("const u = import.meta.url;\n", "import.meta"),
    ('if (x) {\n  import { a } from "./a.js";\n}\n', "must start its own line, outside any block"),
    ("const s = 'open;\n", "unterminated string"),
    ("const t = `open\n", "unterminated template"),
    ("function f() {\n", "unclosed"),
    ("const __attnscope_modules = 1;\n", "the bundle's own name"),
])
def test_transform_refuses_what_it_cannot_bundle_exactly(src, message):
    with pytest.raises(pack.BundleError) as e:
        pack.transform("p.js", src)
    assert message in str(e.value) and "p.js" in str(e.value)


def test_load_order_is_the_browsers_and_links_are_checked():
    files = {
        "main.js": 'import { b } from "./b.js";\nimport { a } from "./a.js";\nexport const m = a + b;\n',
        "a.js": 'import { c } from "./c.js";\nexport const a = c;\n',
        "b.js": 'import { c } from "./c.js";\nexport const b = c;\n',
        "c.js": "export const c = 1;\n",
        "other.js": 'import { a } from "./a.js";\nimport "./d.js";\n',
        "d.js": "window.d = 1;\n",
    }
    read = lambda p: files[p]  # noqa: E731
    assert [m.path for m in pack.load_order(["main.js", "other.js"], read)] == ["c.js", "b.js", "a.js", "main.js", "d.js", "other.js"]
    cyclic = {"a.js": 'import { b } from "./b.js";\nexport const a = 1;\n', "b.js": 'import { a } from "./a.js";\nexport const b = 1;\n'}
    with pytest.raises(pack.BundleError, match=r"import cycle: a\.js -> b\.js -> a\.js"):
        pack.load_order(["a.js"], lambda p: cyclic[p])
    missing = {"a.js": 'import { nope } from "./c.js";\n', "c.js": "export const c = 1;\n"}
    with pytest.raises(pack.BundleError, match="a.js imports 'nope' from c.js, which does not export it"):
        pack.load_order(["a.js"], lambda p: missing[p])

    def absent(p):
        if p == "a.js":
            return 'import { x } from "./gone.js";\n'
        raise FileNotFoundError(p)
    with pytest.raises(pack.BundleError, match="a.js imports gone.js, which is not in static/js"):
        pack.load_order(["a.js"], absent)


def test_every_page_of_the_app_bundles(tmp_path):
    """Every module script the pages load can be bundled as it is today (a new syntax fails here first)."""
    entries = sorted({m for t in (ROOT / "templates").glob("*.html")
                      for m in re.findall(r'src="/static/js/([\w/.-]+\.js)"|{% block script %}([\w/.-]+\.js){% endblock %}',
                                          t.read_text()) for m in m if m})
    script, modules = pack.bundle(entries)
    assert set(entries) <= set(modules)
    assert script.startswith("// attnscope pack") and script.rstrip().endswith("})();")
