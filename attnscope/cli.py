"""The `attnscope` command: serve the app, export one view of one text to a file, write the lesson
as a folder of static pages, or save one page at one state as a folder that works offline.

    attnscope serve [--host 127.0.0.1] [--port 8000] [--workers 1]
    attnscope export --view heatmap --text "a fluffy blue creature" --layer 2 --head 3 -o head.html
    attnscope export --view heatmap --measure moved --text "a fluffy blue creature" -o moved.csv
    attnscope lesson-pack -o lesson/ [--images]
    attnscope pack "http://127.0.0.1:8000/?text=a+fluffy+blue+creature&layer=2&head=3" -o snapshot/
    attnscope models pull hf:HuggingFaceTB/SmolLM2-360M-Instruct[@REVISION]

Long work reports its steps on stderr (tqdm's bar, on a terminal only; --quiet silences it); an error is one line on stderr and a non-zero exit.
"""

import argparse
import sys
from pathlib import Path

from app import exports, viewdata
from app.engine import DEFAULT_MODEL, EngineError, hub, loaders
from app.lesson import DEFAULT_HEAD, DEFAULT_LAYER, LESSON_SENTENCE
from app.runview import MEASURES
from app.settings import Settings

from .images import NoRenderer, render
from . import pack as snapshot
from .lessonpack import build, converted
from .progress import Progress
from .result import registry, run

FORMATS = (".html", ".json", ".csv", ".png", ".svg")


class CliError(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    settings = Settings()
    p = argparse.ArgumentParser(prog="attnscope", description="See how attention moves meaning between tokens.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the web app (uvicorn app.main:app, like `make run`)")
    s.add_argument("--host", default=settings.host, help=f"default: $HOST or {Settings.model_fields['host'].default}")
    s.add_argument("--port", type=int, default=settings.port, help=f"default: $PORT or {Settings.model_fields['port'].default}")
    s.add_argument("--workers", type=int, default=settings.workers,
                   help=f"default: $WORKERS or {Settings.model_fields['workers'].default}")
    e = sub.add_parser(
        "export", help="write one view of one text to a file (.html .json .csv .png .svg)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The format comes from the output file's suffix:\n"
                    "  .html  the interactive plotly figure, plotly.js inline (opens offline from file://)\n"
                    "  .png   static image (kaleido if installed, else Chromium via Playwright)\n"
                    "  .svg   static vector image (same renderers)\n"
                    "  .json / .csv  the data behind the view:\n\n" + viewdata.__doc__.split("\n", 2)[2])
    e.add_argument("--view", choices=viewdata.VIEWS, default="heatmap")
    e.add_argument("--text", required=True, help="the text to run through the model")
    e.add_argument("--model", default=None, help=f"model id (default: $ATTNSCOPE_DEFAULT_MODEL or {DEFAULT_MODEL})")
    e.add_argument("--layer", type=int, default=DEFAULT_LAYER)
    e.add_argument("--head", type=int, default=DEFAULT_HEAD)
    e.add_argument("--token", default=None, help="arrows: the query token, an index or its text (default: the last)")
    e.add_argument("--measure", choices=MEASURES, default="weight",
                   help="heatmap, grid, arrows: weight (where each query looks, the attention weights) or moved "
                        "(what each head carried from each key, ‖weight · v W_O‖₂; not for embeddings)")
    e.add_argument("--cache-dir", default=None, help="converted-weight store (default: ATTNSCOPE_CACHE_DIR or ~/.cache/attnscope)")
    e.add_argument("-o", "--output", required=True, help="output file; its suffix picks the format")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    k = sub.add_parser(
        "lesson-pack", help="write the built-in lesson as static HTML pages that open offline",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write the /lesson page's examples, computed by the real model with the server's own\n"
                    "functions, as a folder of static HTML that opens from file:// with no network:\n\n"
                    f"  index.html        the lesson: tokens of \"{LESSON_SENTENCE}\",\n"
                    "                    one head's math for 'creature', the heads that move the adjectives into it\n"
                    "                    and the attention sink, \"mole\" in three sentences, the Eiffel / a miniature\n"
                    "                    tower, the head finder's specialists, switching off the heads that move\n"
                    "                    the most of 'France' into 'is'; its text carries the model's numbers\n"
                    "  <chart>.html      one page per chart (7), linked to the lesson and to each other\n"
                    "  plotly.min.js     plotly.js, written once and loaded by every page from the same folder\n"
                    "  lesson.json       the numbers (the same data as the app's /lesson page)\n"
                    "  <chart>.png/.svg  with --images\n\n"
                    "The lesson needs a causal language model (it predicts next tokens). The first load of a\n"
                    "model converts its weights to float32 (seconds, once). Progress goes to stderr: a bar\n"
                    "redrawn in place on a terminal, nothing otherwise (--quiet: none on a terminal either). An\n"
                    "error is one line on stderr and exit status 1; --images without kaleido or Chromium\n"
                    "fails with what to install.",
        epilog="example: attnscope lesson-pack -o lesson && xdg-open lesson/index.html")
    k.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder to write (created if missing; files in it are replaced)")
    k.add_argument("--model", default=None,
                   help=f"a causal model id (default: $ATTNSCOPE_DEFAULT_MODEL or {DEFAULT_MODEL})")
    k.add_argument("--cache-dir", default=None,
                   help="converted-weight store (default: ATTNSCOPE_CACHE_DIR or ~/.cache/attnscope)")
    k.add_argument("--images", nargs="?", const="png", choices=("png", "svg"), default=None,
                   help="also write a static image of each chart (default png): kaleido if installed and working, "
                        "else headless Chromium via Playwright; the output says which")
    k.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    a = sub.add_parser(
        "pack", help="save an explorer, explain, compare or lens URL as a folder that opens offline",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Save one page of attnscope at the state its URL says (text, model, layer, head, token, ...,\n"
                    "exactly as the page reads them) as a folder that opens from file:// in a browser with no\n"
                    "server and no network. The numbers are computed here by the model, with the server's own\n"
                    "functions; the server the URL names is not contacted.\n\n"
                    "  index.html     the page at that state, its data inline (a CSP that allows no network)\n"
                    "  app.js         the page's code (static/js's ES modules as one classic script: a page\n"
                    "                 opened from a file may not load modules)\n"
                    "  offline.js     answers the page's requests from the numbers saved; switches off the\n"
                    "  offline.css    controls that need a new forward pass, with a note that says so\n"
                    "  plotly.min.js  plotly.js, once\n"
                    "  static/        the page's stylesheets and icon\n\n"
                    "Hovering, focusing and locking a token, and what else is drawn from the numbers already\n"
                    "there, work as on the live page; another sentence, model, layer or head needs the server.\n"
                    "Pages: the explorer (/), /explain, /compare, /lens. A value the page would quietly replace\n"
                    "(an unknown model, a layer out of range, a parameter it does not read) is an error here.\n"
                    "Without model= the URL means $ATTNSCOPE_DEFAULT_MODEL (or " + DEFAULT_MODEL + "), as the\n"
                    "server does. Progress goes to stderr (a bar on a terminal only; --quiet: none); an error is one\n"
                    "line on stderr and exit status 1.",
        epilog='example: attnscope pack "http://127.0.0.1:8000/?text=the+cat+sat&layer=2&head=3" -o cat && '
               "xdg-open cat/index.html")
    a.add_argument("url", metavar="URL", help="an attnscope page URL (http://host:port/path?query, or /path?query)")
    a.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write (created if missing; files in it are replaced)")
    a.add_argument("--cache-dir", default=None,
                   help="converted-weight store (default: ATTNSCOPE_CACHE_DIR or ~/.cache/attnscope)")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    m = sub.add_parser("models", help="fetch models by Hugging Face id into the hub cache (for ATTNSCOPE_MODELS)")
    msub = m.add_subparsers(dest="models_command", required=True)
    mp = msub.add_parser(
        "pull", help="download a model's config, tokenizer and safetensors weights into the Hugging Face cache",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Download hf:ORG/NAME (a branch, tag or commit after @; default the main branch) into the\n"
                    "Hugging Face cache, as huggingface_hub does for transformers: only config.json, the tokenizer\n"
                    "files and *.safetensors. The cache is HF_HOME/hub (HF_HUB_CACHE overrides it); HF_TOKEN\n"
                    "authenticates gated and private models; with HF_HUB_OFFLINE=1 nothing is downloaded (the\n"
                    "model must be in the cache already). Then serve it with ATTNSCOPE_MODELS=hf:ORG/NAME: the\n"
                    "server finds it in the cache at start. A bar per file on stderr on a terminal (--quiet: none).",
        epilog="example: attnscope models pull hf:HuggingFaceTB/SmolLM2-360M-Instruct && "
               "ATTNSCOPE_MODELS=hf:HuggingFaceTB/SmolLM2-360M-Instruct attnscope serve")
    mp.add_argument("model", metavar="hf:ORG/NAME[@REVISION]", help="the model's Hugging Face id")
    mp.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p


def models_pull(args) -> str:
    """Fetch, then check what was fetched is a model the engine reads (an unsupported one is an error)."""
    hid = hub.parse(args.model)
    folder = hub.fetch(hid, progress=not args.quiet)
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    kind = loaders.hf_model_type(folder)
    if kind not in loaders.CONVERTERS:
        raise CliError(f"pulled {hid} into {folder}, but its model_type {kind!r} is not supported "
                       f"(supported: {', '.join(loaders.CONVERTERS)})")
    size = loaders.source_nbytes(folder) / (1 << 20)
    return (f"pulled {hid} ({kind}, revision {folder.name}) into {folder}: {len(files)} files ({', '.join(files)}), "
            f"{size:.1f} MB of float32 weights when loaded; serve it with ATTNSCOPE_MODELS={hid}")


def export(args) -> str:
    out = Path(args.output)
    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        raise CliError(f"cannot tell the format from {out.name!r}: use one of {', '.join(FORMATS)}")
    if args.token is not None and args.token.lstrip("-").isdigit():
        args.token = int(args.token)
    exports.check_view(args.view, args.measure)  # before loading a model: --view embeddings --measure moved is refused
    reg = registry(args.cache_dir)
    model_id = reg.resolve(args.model)  # None: the settings' default model
    # progress only for the long steps (a quick export stays silent, its error one line)
    first_load, image = not converted(reg, model_id), fmt in (".png", ".svg")
    with Progress(first_load + image, quiet=args.quiet or not (first_load or image)) as p:
        if first_load:
            p.next(f"loading {model_id}: converting its weights to float32 (first load only)")
        result = run(args.text, reg.get(model_id), layer=args.layer, head=args.head)
        if image:
            p.next(f"rendering {out.name}")
        how = write(result, args, out, fmt)
    what = ", what it moved" if args.measure == "moved" else ""
    return f"wrote {out} ({args.view}{what}, {result.model.id}, {len(result.tokens)} tokens){how}"


def write(result, args, out: Path, fmt: str) -> str:
    """The file itself: the same bytes as the app's /export download for .html/.json/.csv."""
    if fmt in (".png", ".svg"):
        try:
            blob, how = render(exports.figure(result, args.view, args.layer, args.head, args.token, args.measure), fmt[1:])
        except NoRenderer as err:
            raise CliError(str(err)) from None
        out.write_bytes(blob)
        return f" ({how})"
    out.write_bytes(exports.export(result, args.view, fmt[1:], args.layer, args.head, args.token, args.measure)[0])
    return ""


def lesson_pack(args) -> str:
    r = build(args.output, args.model, args.cache_dir, args.images, quiet=args.quiet)
    pages = [f for f in r["files"] if f.endswith(".html")]
    images = [f for f in r["files"] if f.endswith((".png", ".svg"))]
    how = f", {len(images)} {args.images.upper()} images ({r['renderer']})" if images else ""
    return (f"wrote {r['dir']}: index.html and {len(pages) - 1} chart pages{how}, plotly.min.js, lesson.json "
            f"({r['model']}); open {r['dir'] / 'index.html'}")


def pack(args) -> str:
    r = snapshot.build(args.url, args.output, args.cache_dir, quiet=args.quiet)
    answers = f", {len(r['answers'])} API answers" if r["answers"] else ""
    return (f"wrote {r['dir']}: index.html ({r['page']}, {r['model']}{answers}), app.js ({len(r['modules'])} modules), "
            f"offline.js, plotly.min.js; open {r['dir'] / 'index.html'}")


def serve(args) -> None:
    import uvicorn
    # proxy headers only when the operator names the proxies (ATTNSCOPE_FORWARDED_ALLOW_IPS): the app adds that itself
    uvicorn.run("app.main:app", host=args.host, port=args.port, workers=args.workers, proxy_headers=False)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "serve":
        serve(args)
        return 0
    try:
        print({"export": export, "lesson-pack": lesson_pack, "pack": pack, "models": models_pull}[args.command](args))
    except (CliError, EngineError, ValueError, OSError) as e:
        print(f"attnscope: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
