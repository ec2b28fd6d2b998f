"""app/routes/pages.py: each page preloads the modules its script imports (one round trip, not one per
level of imports); a pack, whose modules are one bundle, links none."""

import posixpath
import re

from starlette.datastructures import QueryParams

from app.routes.pages import PAGE_SCRIPTS, STATIC_JS, module_graph, page_html


def test_the_module_graph_is_every_static_import_once():
    graph = module_graph("main.js")
    assert len(graph) == len(set(graph)) and "main.js" not in graph
    # reached only through explorer/views.js, then views/heatmap.js: three levels down
    assert {"explorer/views.js", "views/heatmap.js", "colors.js", "tokens.js"} <= set(graph)
    for path in graph:
        assert (STATIC_JS / path).is_file(), path
    # and nothing else: each module's own imports are in it (and examples.js, imported by no module of main.js's, is not)
    assert "examples.js" not in graph
    for path in ("main.js", *graph):
        source = (STATIC_JS / path).read_text(encoding="utf-8")
        for imported in re.findall(r'from "(\.{1,2}/[\w/.-]+\.js)"', source):
            assert posixpath.normpath(posixpath.join(posixpath.dirname(path), imported)) in graph, (path, imported)


def test_the_explorer_preloads_its_modules_and_plotly(client):
    html = client.get("/").text
    preloaded = re.findall(r'<link rel="modulepreload" href="/static/js/([\w/.-]+)">', html)
    assert preloaded == list(module_graph(PAGE_SCRIPTS["explorer"]))
    # plotly.js: fetched at once, run by the page after its first paint (no <script> for it in the HTML)
    assert re.search(r'<link rel="preload" href="/vendor/plotly-\w+\.min\.js" as="script" id="plotly-preload">', html)
    assert 'id="plotly-js"' not in html
    assert 'id="plotly-js"' in client.get("/lens").text  # the other pages still load it as an async script


def test_a_pack_links_no_module_and_runs_plotly_as_a_script(client):
    initial = {"models": [], "state": {}, "data": None, "error": None}
    for page in ("lens", "explorer"):
        html = page_html(page, initial, QueryParams(""), plotly="plotly.min.js")
        assert "modulepreload" not in html and "plotly-preload" not in html
        assert '<script src="plotly.min.js" id="plotly-js" async>' in html
