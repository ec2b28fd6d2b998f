"""The `attnscope` command: every export format decodes to the model's own numbers; errors are one line."""

import csv
import io
import json
import os
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import plotly.offline
import pytest

import attnscope
from app.style import MASKED
from attnscope import cli
from tests.client import post_ok
from tests.test_figures import masked_cells, plotly_png, rgb

TEXT = "a fluffy blue creature"
# (view, suffix, extra arguments)
# run as `python -m attnscope.cli` subprocesses, all at once
JOBS = [("heatmap", "json", []), ("heatmap", "csv", []), ("heatmap", "html", []), ("heatmap", "png", []),
        ("arrows", "svg", ["--token", "creature"])]
# run in-process through cli.main (same code path, no interpreter start-up)
INPROCESS = [("arrows", "csv", ["--token", "creature"]), ("grid", "json", []), ("embeddings", "csv", [])]


def env(cache_dir, **extra):
    return {**os.environ, "ATTNSCOPE_CACHE_DIR": cache_dir, "ATTNSCOPE_MODELS": "", **extra}


@pytest.fixture(scope="module")
def exports(smol, cache_dir, tmp_path_factory):
    """Runs every export at once (they are independent processes) -> {(view, suffix): (path, stdout)}."""
    out = tmp_path_factory.mktemp("exports")
    procs = {}
    for view, suffix, extra in JOBS:
        path = out / f"{view}.{suffix}"
        cmd = [sys.executable, "-m", "attnscope.cli", "export", "--view", view, "--text", TEXT,
               "--layer", "2", "--head", "3", *extra, "-o", str(path)]
        procs[view, suffix] = (path, subprocess.Popen(cmd, env=env(cache_dir), stdout=subprocess.PIPE,
                                                      stderr=subprocess.PIPE, text=True))
    done = {}
    for view, suffix, extra in INPROCESS:
        path = out / f"{view}.{suffix}"
        assert cli.main(["export", "--view", view, "--text", TEXT, "--layer", "2", "--head", "3", *extra,
                         "--cache-dir", cache_dir, "-o", str(path)]) == 0
        done[view, suffix] = (path, "")
    for key, (path, p) in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, (key, stderr)
        done[key] = (path, stdout)
    return done


@pytest.fixture(scope="module")
def pattern(smol):
    return smol.run(TEXT)["blocks.2.attn.hook_pattern"][3]


@pytest.fixture(scope="module")
def texts(smol):
    return [t.text for t in smol.tokenize(TEXT)]


def test_json(exports, pattern, texts):
    d = json.loads(exports["heatmap", "json"][0].read_text())
    assert [t["text"] for t in d["tokens"]] == texts and (d["layer"], d["head"]) == (2, 3)
    n = len(texts)
    for q in range(n):
        for k in range(n):
            if k > q:
                assert d["pattern"][q][k] is None and d["scores"][q][k] is None
            else:
                assert abs(d["pattern"][q][k] - float(pattern[q, k])) < 1e-6
    g = json.loads(exports["grid", "json"][0].read_text())
    assert (g["n_layers"], g["n_heads"]) == (30, 9)
    assert abs(g["patterns"][2][3][-1][0] - float(pattern[-1, 0])) < 1e-6


def test_csv(exports, pattern, texts, smol):
    rows = list(csv.reader(io.StringIO(exports["heatmap", "csv"][0].read_text())))
    assert rows[0] == ["layer", "head", "query_index", "query_token", "key_index", "key_token", "weight", "score"]
    n = len(texts)
    assert len(rows) - 1 == n * (n + 1) // 2  # masked pairs left out
    for L, h, q, qt, k, kt, w, s in rows[1:]:
        q, k = int(q), int(k)
        assert (L, h) == ("2", "3") and k <= q and (qt, kt) == (texts[q], texts[k])
        assert abs(float(w) - float(pattern[q, k])) < 1e-6
    q = [t.strip() for t in texts].index("creature")
    arrows = list(csv.DictReader(io.StringIO(exports["arrows", "csv"][0].read_text())))
    assert len(arrows) == q + 1 and {int(r["query_index"]) for r in arrows} == {q}
    emb = list(csv.reader(io.StringIO(exports["embeddings", "csv"][0].read_text())))
    assert emb[0] == ["boundary", "token_index", "token", "pc1", "pc2"]
    assert len(emb) - 1 == (smol.cfg.n_layers + 1) * n and emb[1][0] == "embed" and emb[-1][0] == "29"


def test_embeddings_are_the_compare_pages_numbers(exports, client):
    """The web page's normalisation (/compare asks /api/residual for normalize true), and its numbers."""
    res = post_ok(client, "/api/residual", text=TEXT, normalize=True)
    rows = list(csv.DictReader(io.StringIO(exports["embeddings", "csv"][0].read_text())))
    assert len(rows) == len(res["layers"]) * len(res["tokens"])
    for r in rows:
        want = res["pca_2d"][res["layers"].index(r["boundary"])][int(r["token_index"])]
        # 7 and 5 decimals of the same float64 PCA: at most 0.5e-7 + 0.5e-5 apart
        assert abs(float(r["pc1"]) - want[0]) <= 0.6e-5 and abs(float(r["pc2"]) - want[1]) <= 0.6e-5


def test_html(exports, pattern, texts):
    path, stdout = exports["heatmap", "html"]
    html = path.read_text()
    lib = plotly.offline.get_plotlyjs()
    assert html.count(lib) == 1  # plotly.js inline: opens offline from file://
    rest = html.replace(lib, "")
    assert "http" not in rest and "require" not in rest
    assert json.dumps(float(pattern[-1, 0])) in rest and "creature" in rest
    assert "wrote" in stdout


def test_png(exports):
    path, stdout = exports["heatmap", "png"]
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and blob[12:16] == b"IHDR"
    w, h = struct.unpack(">II", blob[16:24])
    assert w > 300 and h > 300 and len(blob) > 10_000
    assert "Chromium" in stdout or "kaleido" in stdout  # says which renderer made it


def test_png_has_no_line_across_the_masked_cells(exports, smol, browser):
    """The PNG is the figure at scale 2: its plot area is the in-page figure's, doubled; every masked
    pixel is the masked grey (plotly's zero line crossed query 0's masked row in white)."""
    _, box = plotly_png(browser, attnscope.run(TEXT, model=smol).heatmap(2, 3))
    pixels = masked_cells(exports["heatmap", "png"][0].read_bytes(), tuple(2 * v for v in box), len(smol.tokenize(TEXT)))
    assert len(pixels) > 0.3 * 4 * box[2] * box[3]
    assert (np.abs(pixels - rgb(MASKED)).max(-1) > 2).sum() == 0


def test_svg(exports):
    path, stdout = exports["arrows", "svg"]
    root = ET.fromstring(path.read_bytes())
    assert root.tag.endswith("svg")
    assert "creature" in path.read_text()
    assert "Chromium" in stdout or "kaleido" in stdout


def moved_by_hand(smol, layer: int, head: int):
    """[query, key] pattern · ‖v[key, kv(head)] @ W_O[head]‖₂ from an independent forward pass's captures
    and the model's weights, in float64 (the formula of issue 12, not app/contributions.py's code)."""
    cfg, run = smol.cfg, smol.run(TEXT)
    v = run[f"blocks.{layer}.attn.hook_v"][:, head // (cfg.n_heads // cfg.n_kv_heads)].astype("float64")  # [pos, d_head]
    W_O = smol.weights[f"blocks.{layer}.attn.W_O"].astype("float64")[head * cfg.d_head:(head + 1) * cfg.d_head]
    norms = ((v @ W_O) ** 2).sum(-1) ** 0.5  # [key]
    return run[f"blocks.{layer}.attn.hook_pattern"][head].astype("float64") * norms


def test_measure_moved_writes_the_downloads_file(smol, cache_dir, client, tmp_path, capsys):
    """--measure moved: the same bytes as /export/...?measure=moved (html aside: plotly gives each
    page its own element id), whose numbers are what each head moved."""
    params = {"text": TEXT, "layer": 2, "head": 3, "measure": "moved"}
    for view, suffix, extra in [("heatmap", "csv", []), ("grid", "json", []), ("arrows", "json", ["--token", "3"])]:
        path = tmp_path / f"{view}.{suffix}"
        assert cli.main(["export", "--view", view, "--measure", "moved", "--text", TEXT, "--layer", "2", "--head", "3",
                         *extra, "--cache-dir", cache_dir, "-o", str(path)]) == 0
        assert f"({view}, what it moved, " in capsys.readouterr().out
        r = client.get(f"/export/{view}.{suffix}", params=params | ({"token": 3} if extra else {}))
        assert r.status_code == 200 and path.read_bytes() == r.content, view
    want = moved_by_hand(smol, 2, 3)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "heatmap.csv").read_text())))
    assert len(rows) == len(want) * (len(want) + 1) // 2
    # 4 decimals (0.5e-4) plus float32's rounding of a norm of about 8 (a few 1e-6)
    assert all(abs(float(r["moved"]) - want[int(r["query_index"]), int(r["key_index"])]) <= 0.5e-4 + 1e-5 for r in rows)
    g = json.loads((tmp_path / "grid.json").read_text())
    assert abs(g["moved"][2][3][3][1] - want[3, 1]) <= 0.5e-4 + 1e-5
    html = tmp_path / "heatmap.html"
    assert cli.main(["export", "--measure", "moved", "--text", TEXT, "--cache-dir", cache_dir, "-o", str(html)]) == 0
    assert "what it moved: ‖weight · v W_O‖₂" in html.read_text()
    # the embeddings have no head: refused in one line, before any model is loaded
    assert cli.main(["export", "--view", "embeddings", "--measure", "moved", "--text", TEXT, "-o", str(tmp_path / "e.csv")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "measure=moved applies to heatmap, grid, arrows only" in err, err
    assert not (tmp_path / "e.csv").exists()


def test_measure_moved_image(smol, cache_dir, tmp_path):
    """A PNG/SVG of what moved comes from the same figure: its title says so."""
    path = tmp_path / "moved.svg"
    p = subprocess.run([sys.executable, "-m", "attnscope.cli", "export", "--view", "arrows", "--measure", "moved",
                        "--text", TEXT, "--token", "creature", "-o", str(path)], env=env(cache_dir), capture_output=True,
                       text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    svg = path.read_text()
    assert ET.fromstring(svg).tag.endswith("svg") and "takes from" in svg and "what it moved" in svg


def test_unknown_model_is_one_line(cache_dir):
    p = subprocess.run([sys.executable, "-m", "attnscope.cli", "export", "--text", TEXT, "--model", "nope",
                        "-o", "x.json"], env=env(cache_dir), capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model 'nope'" in lines[0] and "smollm2-135m-instruct" in lines[0]


def test_other_errors_are_one_line(smol, cache_dir, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNSCOPE_CACHE_DIR", cache_dir)
    monkeypatch.setenv("ATTNSCOPE_MAX_TOKENS", "3")
    cases = [(["--text", TEXT], "the text has 4 tokens; this model takes at most 3"),
             (["--text", TEXT, "--layer", "30"], "layer 30 is out of range"),
             (["--text", TEXT, "--view", "arrows", "--token", "dragon"], "no token 'dragon'")]
    from attnscope import result
    result._registries.clear()  # pick up the lower token limit
    try:
        for i, (args, message) in enumerate(cases):
            if i:
                monkeypatch.setenv("ATTNSCOPE_MAX_TOKENS", "512")
                result._registries.clear()
            assert cli.main(["export", *args, "-o", str(tmp_path / "x.json")]) == 1
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and message in err, err
        assert cli.main(["export", "--text", TEXT, "-o", str(tmp_path / "x.pdf")]) == 1
        assert ".html, .json, .csv, .png, .svg" in capsys.readouterr().err
    finally:
        result._registries.clear()


def test_serve_runs_the_app_like_make_run(monkeypatch):
    import uvicorn
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "9123", "--workers", "2"]) == 0
    # no proxy headers from uvicorn: the app trusts a proxy only when ATTNSCOPE_FORWARDED_ALLOW_IPS names it
    assert calls == [(("app.main:app",), {"host": "0.0.0.0", "port": 9123, "workers": 2, "proxy_headers": False})]


# --- the progress bar ---------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty

    @property
    def encoding(self):
        return "utf-8"


def test_progress_on_a_terminal_redraws_one_line():
    from attnscope.progress import Progress

    term = Terminal(True)
    with Progress(2, file=term) as p:
        p.next("loading")
        p.next("writing index.html")
    out = term.getvalue()
    assert "\n" not in out[:-1] and out.endswith("\n")  # one line, redrawn in place with \r (tqdm)
    frames = out.split("\r")[1:]
    assert any("0/2" in f and "loading" in f for f in frames) and any("1/2" in f and "writing index.html" in f for f in frames)
    assert "2/2" in frames[-1] and "█" * 20 in frames[-1]


def test_progress_off_a_terminal_is_silent_and_a_failed_step_erases_the_bar():
    from attnscope.progress import Progress

    log = Terminal(False)
    with pytest.raises(OSError):
        with Progress(3, file=log) as p:
            p.next("loading")
            raise OSError("disk full")
    assert log.getvalue() == ""  # tqdm draws nothing off a terminal: pipes and CI logs stay clean
    term = Terminal(True)
    with pytest.raises(OSError):
        with Progress(3, file=term) as p:
            p.next("loading")
            raise OSError("disk full")
    out = term.getvalue()
    assert "loading" in out and out.endswith("\r") and not out.rsplit("\r", 2)[-2].strip()  # erased: the error is the only line


def test_progress_quiet_and_ascii():
    from attnscope.progress import Progress

    for tty in (True, False):
        s = Terminal(tty)
        with Progress(2, file=s, quiet=True) as p:
            p.next("a")
            p.next("b")
        assert s.getvalue() == ""
    ascii_term = io.StringIO()
    ascii_term.isatty = lambda: True
    with Progress(1, file=ascii_term) as p:
        p.next("a")
    assert "#" * 20 in ascii_term.getvalue()  # no block characters on a stream that does not say UTF-8


def test_quick_export_prints_no_progress(smol, cache_dir, tmp_path, capsys):
    assert cli.main(["export", "--text", TEXT, "--cache-dir", cache_dir, "-o", str(tmp_path / "h.json")]) == 0
    assert capsys.readouterr().err == ""  # quick work: no progress
