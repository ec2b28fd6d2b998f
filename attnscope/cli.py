"""The `attnscope` command: serve the app, or export one view of one text to a file.

    attnscope serve [--host 127.0.0.1] [--port 8000] [--workers 1]
    attnscope export --view heatmap --text "a fluffy blue creature" --layer 2 --head 3 -o head.html
"""

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from . import data as data_mod

FORMATS = (".html", ".json", ".csv", ".png", ".svg")


class CliError(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="attnscope", description="See how attention moves meaning between tokens.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the web app (uvicorn app.main:app, like `make run`)")
    s.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="default: $HOST or 127.0.0.1")
    s.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="default: $PORT or 8000")
    s.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")), help="default: $WORKERS or 1")
    e = sub.add_parser(
        "export", help="write one view of one text to a file (.html .json .csv .png .svg)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The format comes from the output file's suffix:\n"
                    "  .html  the interactive plotly figure, plotly.js inline (opens offline from file://)\n"
                    "  .png   static image (kaleido if installed, else Chromium via Playwright)\n"
                    "  .svg   static vector image (same renderers)\n"
                    "  .json / .csv  the data behind the view:\n\n" + data_mod.__doc__.split("\n", 2)[2])
    e.add_argument("--view", choices=data_mod.VIEWS, default="heatmap")
    e.add_argument("--text", required=True, help="the text to run through the model")
    e.add_argument("--model", default=None, help="model id (default: smollm2-135m-instruct)")
    e.add_argument("--layer", type=int, default=2)
    e.add_argument("--head", type=int, default=3)
    e.add_argument("--token", default=None, help="arrows: the query token, an index or its text (default: the last)")
    e.add_argument("--cache-dir", default=None, help="converted-weight store (default: ATTNSCOPE_CACHE_DIR or ~/.cache/attnscope)")
    e.add_argument("-o", "--output", required=True, help="output file; its suffix picks the format")
    return p


def figure(result, args):
    if args.view == "heatmap":
        return result.heatmap(args.layer, args.head)
    if args.view == "grid":
        return result.grid()
    if args.view == "arrows":
        return result.arrows(args.layer, args.head, args.token)
    return result.embeddings()


def export(args) -> str:
    out = Path(args.output)
    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        raise CliError(f"cannot tell the format from {out.name!r}: use one of {', '.join(FORMATS)}")
    from app.engine import DEFAULT_MODEL

    from .result import run
    token = args.token
    if token is not None and token.lstrip("-").isdigit():
        token = int(token)
    args.token = token
    result = run(args.text, args.model or os.environ.get("ATTNSCOPE_DEFAULT_MODEL", DEFAULT_MODEL), args.cache_dir,
                 layer=args.layer, head=args.head)
    how = ""
    if fmt == ".json":
        out.write_text(json.dumps(data_mod.json_data(result, args.view, args.layer, args.head, token),
                                  ensure_ascii=False), encoding="utf-8")
    elif fmt == ".csv":
        header, rows = data_mod.csv_rows(result, args.view, args.layer, args.head, token)
        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    else:
        fig = figure(result, args)
        if fmt == ".html":
            fig.write_html(out, include_plotlyjs=True, full_html=True)
        else:
            from .images import NoRenderer, render
            try:
                blob, how = render(fig, fmt[1:])
            except NoRenderer as err:
                raise CliError(str(err)) from None
            out.write_bytes(blob)
            how = f" ({how})"
    return f"wrote {out} ({args.view}, {result.model.id}, {len(result.tokens)} tokens){how}"


def serve(args) -> None:
    import uvicorn
    uvicorn.run("app.main:app", host=args.host, port=args.port, workers=args.workers)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "serve":
        serve(args)
        return 0
    from app.engine import EngineError
    try:
        print(export(args))
    except (CliError, EngineError, ValueError, OSError) as e:
        print(f"attnscope: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
