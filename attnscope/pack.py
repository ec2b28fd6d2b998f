"""`attnscope pack URL -o DIR`: one explorer, explain, compare or lens page, at the state its URL says,
as a folder that opens from file:// with no server and no network.

The page is the app's own: its HTML from app/routes/pages.py's functions (the state and the first
view's data, inline as on the live page), its code the app's ES modules (static/js, as they are),
its numbers the API's payloads for the requests the page makes as it loads, computed here by a
Runner made without a server. The folder:

    index.html      the page at that state, data inline, under a CSP that allows no network at all
    app.js          the page's ES modules as one classic script (bundle(): see "the page's code")
    offline.js      the snapshot's runtime: answers the page's API requests from the numbers inline,
                    switches off what would need a new forward pass and says so
    offline.css     the snapshot's note
    plotly.min.js   plotly.js from the plotly package, once
    static/...      the page's stylesheets and icon, as the app serves them

A snapshot holds one state: hovering, focusing and locking a token, and whatever else is drawn from
the numbers already there, work as on the live page; the controls that ask the server for a new state
(another sentence, model, layer, head...) are disabled, with a note that says why and links to the live
page when the URL named a server.
"""

import json
import posixpath
import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from jinja2.utils import htmlsafe_json_dumps
from pydantic import ValidationError
from starlette.datastructures import QueryParams

from app import payloads
from app.engine import EngineError
from app.http import ApiError, error_body
from app.routes.pages import PAGES, page_html, shown_then
from app.runs import Runner
from app.schemas import (AttributionRequest, CompareRequest, FlowRequest, HeadRequest, HeadsRequest, LensRequest, ResidualRequest,
                         RolloutRequest)
from app.settings import Settings
from app.templating import ROOT, TEMPLATES
from app.text import query_problem
from app.vendor import plotly_path

from .lessonpack import converted, writable_dir
from .progress import Progress
from .result import registry as shared_registry

STATIC = ROOT / "static"
RUNTIME = Path(__file__).resolve().parent / "offline"  # offline.js and offline.css, copied into every pack


class PackError(ValueError):
    pass


# --- the page's code: our ES modules as one classic script ---------------------------------------------
#
# Chromium refuses module scripts from file:// (a module is fetched in CORS mode, and a file's origin is
# 'null'); a classic <script src> from the same folder is allowed. So the pack turns the page's modules
# into one classic script: each module a function run once, in the order the browser evaluates them
# (depth first, imports in source order, each module once, one entry <script> after another), its
# imports read from the modules run before it, its exports returned. For the module syntax our code
# uses that is the browser's own semantics (strict code, module-private names, each module once, a
# link error for a name that is not exported: here at pack time); anything else is refused, with the
# file and line, rather than bundled wrongly:
#   import { a, b as c } from "./x.js";   import * as x from "./x.js";   import "./x.js";
#   export function/async function/function*/class/const NAME ...;     export { a, b as c };
# Refused: export default, export let/var (a live binding that a copy would freeze), re-exports
# (export ... from), dynamic import(), import.meta, specifiers that are not relative, import cycles.

REGISTRY = "__attnscope_modules"
IDENT = re.compile(r"[A-Za-z_$][\w$]*")
NUMBER = re.compile(r"\d[\w.]*")
# a `/` after one of these (or at the start) begins a regular expression; after anything else it divides
REGEX_AFTER = set("(,=:[!&|?{};+-*%<>~^")
REGEX_KEYWORDS = {"return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case", "do",
                  "else", "yield", "await"}
NAME = r"[A-Za-z_$][\w$]*"
IMPORT = re.compile(r"import\s*(?:\{(?P<names>[^{}]*)\}\s*from\s*|\*\s*as\s+(?P<ns>" + NAME + r")\s*from\s*)?"
                    r"(?P<q>[\"'])(?P<spec>[^\"'\n]+)(?P=q)[ \t]*;?")
EXPORT_DECL = re.compile(r"export\s+(?P<kw>async\s+function\b\s*\*?|function\b\s*\*?|class\b|const\b|let\b|var\b)\s*"
                         r"(?P<name>" + NAME + r")")
EXPORT_LIST = re.compile(r"export\s*\{(?P<names>[^{}]*)\}(?P<from>\s*from\b)?[ \t]*;?")


class BundleError(PackError):
    pass


def _where(src: str, i: int, path: str) -> str:
    line = src.count("\n", 0, i) + 1
    text = src.splitlines()[line - 1].strip() if src else ""
    return f"{path}:{line}: {text[:80]}"


def _string_end(src: str, i: int, path: str) -> int:
    """The index after the string literal that starts at i (' or ")."""
    q, j = src[i], i + 1
    while j < len(src):
        if src[j] == "\\":
            j += 2
            continue
        if src[j] == q:
            return j + 1
        if src[j] == "\n":
            break
        j += 1
    raise BundleError(f"unterminated string at {_where(src, i, path)}")


def _regex_end(src: str, i: int, path: str) -> int:
    """The index after the regular expression literal that starts at i (with its flags)."""
    j, in_class = i + 1, False
    while j < len(src) and src[j] != "\n":
        c = src[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            j += 1
            while j < len(src) and (src[j].isalnum() or src[j] == "_"):
                j += 1
            return j
        j += 1
    raise BundleError(f"unterminated regular expression at {_where(src, i, path)}")


def module_statements(src: str, path: str = "module") -> list[int]:
    """Where the module's import and export statements start: each `import`/`export` keyword that is
    code (not in a string, comment, template text or regular expression), outside every bracket, and
    the first word on its line. Dynamic import() and import.meta are refused wherever they are."""
    starts, stack, prev = [], [], ""  # stack: open brackets, "${" for a template's substitution
    i, n = 0, len(src)

    def template_text(i: int) -> int:
        """From inside a template's text: the index after its closing backtick, or after a `${`."""
        while i < n:
            if src[i] == "\\":
                i += 2
            elif src[i] == "`":
                return i + 1
            elif src.startswith("${", i):
                stack.append("${")
                return i + 2
            else:
                i += 1
        raise BundleError(f"unterminated template literal in {path}")

    while i < n:
        c = src[i]
        if c in " \t\r\n":
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            if j < 0:
                raise BundleError(f"unterminated comment at {_where(src, i, path)}")
            i = j + 2
        elif c in "'\"":
            i, prev = _string_end(src, i, path), "x"
        elif c == "`":
            i, prev = template_text(i + 1), "x"
        elif c == "/" and (prev == "" or prev in REGEX_AFTER or prev in REGEX_KEYWORDS):
            i, prev = _regex_end(src, i, path), "x"
        elif m := IDENT.match(src, i):
            word = m.group()
            after = src[m.end():m.end() + 40].lstrip()
            if word == "import" and prev != "." and after[:1] in ("(", "."):
                what = "dynamic import()" if after[0] == "(" else "import.meta"
                raise BundleError(f"{what} is not supported by the pack's bundler: {_where(src, i, path)}")
            if word in ("import", "export") and prev != "." and not after.startswith(":"):
                line_start = src.rfind("\n", 0, i) + 1
                if stack or src[line_start:i].strip():
                    raise BundleError(f"an {word} statement must start its own line, outside any block: "
                                      f"{_where(src, i, path)}")
                starts.append(i)
            if word == REGISTRY:
                raise BundleError(f"{REGISTRY} is the bundle's own name: {_where(src, i, path)}")
            i, prev = m.end(), word
        elif m := NUMBER.match(src, i):
            i, prev = m.end(), "x"
        elif c in "([{":
            stack.append(c)
            i, prev = i + 1, c
        elif c in ")]}":
            if not stack:
                raise BundleError(f"unbalanced {c!r} at {_where(src, i, path)}")
            top = stack.pop()
            if top == "${":
                if c != "}":
                    raise BundleError(f"unbalanced {c!r} at {_where(src, i, path)}")
                i, prev = template_text(i + 1), "x"
            else:
                i, prev = i + 1, c
        else:
            i, prev = i + 1, c
    if stack:
        raise BundleError(f"unclosed {stack[-1]!r} in {path}")
    return starts


def _names(text: str, src: str, at: int, path: str) -> list[tuple[str, str]]:
    """'a, b as c' -> [("a", "a"), ("b", "c")]: (the name there, the name here)."""
    out = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) == 1 and IDENT.fullmatch(words[0]):
            out.append((words[0], words[0]))
        elif len(words) == 3 and words[1] == "as" and IDENT.fullmatch(words[0]) and IDENT.fullmatch(words[2]):
            out.append((words[0], words[2]))
        else:
            raise BundleError(f"cannot read {part.strip()!r} in {_where(src, at, path)}")
    return out


@dataclass
class Module:
    path: str  # relative to static/js, as the bundle names it
    code: str  # the source with its import and export statements taken out
    imports: list  # [(dependency path, kind: "names" | "namespace" | "bare", [(exported, local)])]
    exports: dict  # exported name -> local name


def resolve(spec: str, importer: str, src: str, at: int) -> str:
    """A relative specifier of importer -> the module's path under static/js."""
    if not spec.startswith(("./", "../")) or not spec.endswith(".js"):
        raise BundleError(f"only relative imports of .js files can be bundled, not {spec!r}: {_where(src, at, importer)}")
    path = posixpath.normpath(posixpath.join(posixpath.dirname(importer), spec))
    if path.startswith("../"):
        raise BundleError(f"{spec!r} leaves static/js: {_where(src, at, importer)}")
    return path


def transform(path: str, src: str) -> Module:
    """One module: its imports, its exports, and its code without the statements that declared them."""
    imports, exports, edits = [], {}, []  # edits: (start, end, replacement)
    for at in module_statements(src, path):
        if src.startswith("import", at):
            m = IMPORT.match(src, at)
            if not m:
                raise BundleError(f"unsupported import (named, namespace or bare imports only): {_where(src, at, path)}")
            dep = resolve(m["spec"], path, src, at)
            if m["ns"]:
                imports.append((dep, "namespace", [("*", m["ns"])]))
            elif m["names"] is not None:
                imports.append((dep, "names", _names(m["names"], src, at, path)))
            else:
                imports.append((dep, "bare", []))
            edits.append((at, m.end(), "\n" * src.count("\n", at, m.end())))  # imports are hoisted: read first
        elif m := EXPORT_DECL.match(src, at):
            kw = m["kw"].split()[0]
            if kw in ("let", "var"):
                raise BundleError(f"export {kw} is a live binding the bundle cannot keep: export a const or a function: "
                                  f"{_where(src, at, path)}")
            exports[m["name"]] = m["name"]
            edits.append((at, m.start("kw"), ""))
        elif m := EXPORT_LIST.match(src, at):
            if m["from"]:
                raise BundleError(f"re-exports (export ... from) are not supported: {_where(src, at, path)}")
            for local, exported in _names(m["names"], src, at, path):
                exports[exported] = local
            edits.append((at, m.end(), ""))
        else:
            raise BundleError(f"unsupported export (default, *, or a pattern): {_where(src, at, path)}")
    code = src
    for start, end, new in sorted(edits, reverse=True):
        code = code[:start] + new + code[end:]
    return Module(path, code, imports, exports)


def load_order(entries: list[str], read) -> list[Module]:
    """Every module the entries need, in the order the browser evaluates them: each entry's graph depth
    first, a module after its imports (in their source order), each once. read(path) -> its source."""
    done: dict[str, Module] = {}
    order: list[Module] = []

    def visit(path: str, chain: tuple):
        if path in chain:
            raise BundleError("import cycle: " + " -> ".join(chain[chain.index(path):] + (path,)))
        if path in done:
            return
        try:
            src = read(path)
        except OSError:
            raise BundleError(f"{chain[-1] if chain else 'the page'} imports {path}, which is not in static/js") from None
        module = transform(path, src)
        for dep, _, _ in module.imports:
            visit(dep, chain + (path,))
        for dep, kind, names in module.imports:
            if kind != "names":
                continue
            for exported, _ in names:
                if exported not in done[dep].exports:
                    raise BundleError(f"{path} imports {exported!r} from {dep}, which does not export it")
        done[path] = module
        order.append(module)

    for entry in entries:
        visit(entry, ())
    return order


def bundle(entries: list[str], root: Path = STATIC / "js") -> tuple[str, list[str]]:
    """The modules entries (paths under root, in the page's <script type=module> order) need, as one
    classic script -> (its text, the modules in it, in evaluation order)."""
    modules = load_order(entries, lambda p: (root / p).read_text(encoding="utf-8"))
    out = [f"// attnscope pack: the page's ES modules (static/js) as one classic script, in the order the\n"
           f"// browser evaluates them (a page opened from file:// may not load modules). Made by attnscope/pack.py.\n"
           f"(function () {{\n\"use strict\";\nconst {REGISTRY} = Object.create(null);\n"]
    for m in modules:
        reads = []
        for dep, kind, names in m.imports:
            if kind == "namespace":
                reads.append(f"const {names[0][1]} = {REGISTRY}[{json.dumps(dep)}];")
            elif kind == "names" and names:
                fields = ", ".join(e if e == local else f"{e}: {local}" for e, local in names)
                reads.append(f"const {{ {fields} }} = {REGISTRY}[{json.dumps(dep)}];")
        # a module namespace lists its names sorted (by code unit), whatever order they were declared in
        fields = ", ".join(e if e == local else f"{e}: {local}" for e, local in sorted(m.exports.items()))
        out.append(f"// ==== static/js/{m.path} ====\n{REGISTRY}[{json.dumps(m.path)}] = (() => {{\n" + "".join(r + "\n" for r in reads)
                   + m.code.rstrip() + f"\nreturn Object.freeze({{ __proto__: null, {fields} }});\n}})();\n")
    out.append("})();\n")
    return "".join(out), [m.path for m in modules]


# --- the URL: which page, which state ------------------------------------------------------------------

# the parameters each page reads from its URL (pages.py and the page's script), and what each must be
CHOICES = {"dir": ("in", "out"), "measure": ("weight", "moved"), "offmode": ("zero", "mean"), "locked": ("0", "1"),
           "all": ("0", "1"), "present": ("0", "1")}
INTS = ("layer", "head", "token", "step", "at", "target", "vs", "upto")
WRITTEN = ("then", "upto")  # the ids the model wrote after the text, and the timeline's step (pages.written_state)
PARAMS = {
    "explorer": ("text", "model", "layer", "head", "token", "locked", "dir", "heads", "t", "off", "offmode", "measure",
                 "at", "target", "vs", "present") + WRITTEN + ("n", "wt", "topk", "topp", "seed", "chat"),
    "explain": ("text", "model", "layer", "head", "token", "step", "all", "present") + WRITTEN,
    "compare": ("word", "s", "model", "present"),
    "lens": ("text", "model", "token", "tau", "present"),  # token, tau: the flow graph's (static/js/lens.js)
}


def parse_url(url: str) -> tuple[str, str, QueryParams, str | None]:
    """URL -> (page path, page name, its query, the server it names (scheme://host:port) or None). Any
    attnscope page URL: http(s)://host[:port]/path?query, or just /path?query."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https", "") or (parts.scheme and not parts.netloc) or (parts.netloc and not parts.scheme):
        raise PackError(f"not an attnscope page URL: {url!r} (give http://host:port/path?query, or /path?query)")
    path = parts.path or "/"
    if path not in PAGES:
        hint = ("; the lesson has its own pack: attnscope lesson-pack -o DIR" if path == "/lesson" else
                "; pack the page it shows (/, /explain, /compare or /lens)" if path.startswith("/embed/") else "")
        raise PackError(f"not an attnscope page URL: {url!r}: attnscope pack saves the explorer (/), /explain, "
                        f"/compare or /lens, not {path}{hint}")
    if problem := query_problem(parts.query):
        raise PackError(f"the URL's query cannot be read: {problem}")
    q = QueryParams(parts.query)
    page = PAGES[path][0]
    if page == "explorer" and {"cmp", "cmpl", "cmph"} & set(q.keys()):
        raise PackError("the explorer's side-by-side view (cmp, cmpl, cmph) cannot be packed yet: "
                        "pack each model's one-model URL (drop cmp, cmpl and cmph), or print the page")
    unknown = sorted(set(q.keys()) - set(PARAMS[page]))
    if unknown:
        raise PackError(f"the {page} page has no parameter {', '.join(map(repr, unknown))}: it reads "
                        f"{', '.join(PARAMS[page])}")
    for name, allowed in CHOICES.items():
        if name in q and q[name] not in allowed:
            raise PackError(f"{name}={q[name]!r}: must be {' or '.join(allowed)}")
    for name in INTS:
        if name in q and not re.fullmatch(r"-?\d+", q[name]):
            raise PackError(f"{name}={q[name]!r}: not a whole number")
    if "t" in q:
        try:
            t = float(q["t"])
        except ValueError:
            t = float("nan")
        if not 0.1 <= t <= 100:
            raise PackError(f"t={q['t']!r}: the temperature must be a number from 0.1 to 100")
    for name, pattern, form in (("heads", r"\d+", "head numbers"), ("off", r"\d+\.\d+", "layer.head pairs")):
        bad = [x for x in q.get(name, "").split(",") if x and not re.fullmatch(pattern, x)]
        if bad:
            raise PackError(f"{name}={q[name]!r}: must be {form} separated by commas, not {bad[0]!r}")
    server = f"{parts.scheme}://{parts.netloc}" if parts.scheme else None
    return path, page, q, server


def check_state(runner: Runner, page: str, q: QueryParams, initial: dict) -> None:
    """What the page would quietly replace (it falls back to a default or clamps) is an error here: the
    pack saves the state the URL asks for, or nothing."""
    model = runner.model(initial["state"]["model"])
    try:
        if "layer" in q:
            payloads.check_layer(model, int(q["layer"]))
        for h in [q.get("head", "")] + q.get("heads", "").split(","):
            if h:
                payloads.check_head(model, int(h))
        for pair in filter(None, q.get("off", "").split(",")):
            layer, head = map(int, pair.split("."))
            payloads.check_layer(model, layer)
            payloads.check_head(model, head)
    except ApiError as e:
        raise PackError(e.detail) from None
    if initial.get("error"):
        raise PackError(f"the page shows an error at this state: {initial['error']['detail']}")
    data = initial.get("data") or {}
    tokens = data.get("tokens") or (data.get("attention") or {}).get("tokens")
    if "token" in q and tokens is not None and not (page == "explorer" and q["token"] == "-1") \
            and not 0 <= int(q["token"]) < len(tokens):
        raise PackError(f"token={q['token']}: the text has {len(tokens)} tokens (0-{len(tokens) - 1})")
    if page == "explorer" and q.get("off") and not model.cfg.causal:
        raise PackError(f"off={q['off']!r}: {model.id} is an encoder; it predicts nothing, so no head is switched off")
    if page == "explain" and int(q.get("step", "1")) < 1:
        raise PackError(f"step={q['step']}: steps count from 1")


# --- the snapshot: the page's HTML, the answers to its requests, what works offline ----------------------

# the API's routes the pages call as they load: path -> (request schema, payload), as app/routes/api.py pairs them
ENDPOINTS = {
    "/api/attribution": (AttributionRequest, payloads.attribution_payload),
    "/api/compare": (CompareRequest, payloads.compare_payload),
    "/api/flow": (FlowRequest, payloads.flow_payload),
    "/api/head": (HeadRequest, payloads.head_payload),
    "/api/heads": (HeadsRequest, payloads.heads_payload),
    "/api/lens": (LensRequest, payloads.lens_payload),
    "/api/residual": (ResidualRequest, payloads.residual_payload),
    "/api/rollout": (RolloutRequest, payloads.rollout_payload),
}


def requests_at_load(runner: Runner, page: str, initial: dict) -> list[tuple[str, dict]]:
    """The API requests the page's script makes for its state as it loads, each body as the script sends
    it (static/js/compare.js, lens.js; the explorer's explained prediction in explorer/data.js's NEEDS, and
    its heatmap hover's second number, hoverPart, asked for when a cell is first hovered).
    The explorer's and explain's other data is inline already. A request the page makes that is not here
    finds no answer offline (the page then says so, and tests/e2e/test_pack.py fails)."""
    s = initial["state"]
    if page == "compare":
        return [("/api/compare", {"model": s["model"], "sentences": s["sentences"], "word": s["word"]}),
                ("/api/residual", {"model": s["model"], "text": s["sentences"][0], "normalize": True})]
    if page == "lens":
        common = {"text": s["text"], "model": s["model"]}
        lens = [("/api/lens", {**common, "top_k": 5})] if runner.model(s["model"]).cfg.causal else []
        return lens + [("/api/heads", {**common, "top": 6}), ("/api/rollout", common), ("/api/flow", common)]
    out = []
    if page == "explorer" and initial.get("data"):
        # the heatmap hover's second number (explorer/data.js's hoverPart), asked for on the first hover
        then = shown_then(s)
        out.append(("/api/head", {"text": s["text"], "model": s["model"], **({"then": then} if then else {}), "layer": s["layer"],
                                  "head": s["head"], "parts": ["pattern" if s["measure"] == "moved" else "scores"]}))
    if page == "explorer" and runner.model(s["model"]).cfg.causal:
        # store.js's whyFromInitial: a target (a token id) picks the explained prediction, at its position
        int_ = lambda v: int(v) if re.fullmatch(r"\d+", str(v or "")) else -1  # noqa: E731
        target = int_(s["target"])
        if target >= 0:
            then = shown_then(s)  # explorer/data.js's input(): the ids written, up to the timeline's step
            body = {"text": s["text"], "model": s["model"], **({"then": then} if then else {}), "position": int_(s["at"]), "target": target}
            if int_(s["vs"]) >= 0:
                body["contrast"] = int_(s["vs"])
            out.append(("/api/attribution", body))
    return out


def answer(runner: Runner, path: str, body: dict) -> dict:
    """What the API answers to body at path, computed by the API's own payload function."""
    schema, build = ENDPOINTS[path]
    try:
        return build(runner, schema(**body))
    except ValidationError as e:  # what the API would answer with a 422 invalid_request
        detail = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise PackError(f"the page shows an error at this state: {detail}") from None
    except (EngineError, ApiError) as e:
        raise PackError(f"the page shows an error at this state: {error_body(e)['detail']}") from None


@dataclass(frozen=True)
class Offline:
    """What the snapshot of a page switches off, and what it says still works."""
    controls: tuple[str, ...]  # CSS selectors of the controls that ask the server for another state
    works: str  # what still works, drawn from the numbers saved
    needs: str  # what would need the server
    keep: tuple[str, ...] | None = None  # the explorer: the store keys that need no new data (others are refused)


OFFLINE = {
    "explorer": Offline(("#text", "#model", "#layer", "#head", "input[name=measure]", "#temperature", "#off-mode",
                         "#switch-mode", "#off-clear", "#why-vs", ".off-chip", "#write-one", "#write-n", "#write-count",
                         "#write-t", "#write-topk", "#write-topp", "#write-seed", "#write-chat", "#timeline-step",
                         ".tl-chip", ".pred-append", "#cmp"),
                        "hovering, focusing and locking a token, the arrows' direction, the heads drawn, PNG and SVG "
                        "downloads, presenting and printing",
                        "another sentence, model, layer, head, measure or temperature, switching heads off, explaining "
                        "another prediction, letting the model write or another step of what it wrote, comparing with "
                        "another model",
                        keep=("token", "locked", "dir", "heads")),  # explorer/data.js: no need depends on these
    "explain": Offline(("#text", "#model", "#layer", "#head"),
                       "every step, any query token, all query tokens at once, presenting and printing",
                       "another sentence, model, layer or head"),
    "compare": Offline(("#word", "#sentences input", "#add", "#remove", "#examples button", "#model"),
                       "the charts' hover and zoom, the 2-D or 3-D projection, presenting and printing",
                       "another word, sentence or model"),
    "lens": Offline(("#text", "#model"),
                    "the rollout's layer slider, the flow graph's threshold and token, the head finder's readings, the charts' hover, presenting and printing",
                    "another sentence or model"),
}

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'none'; font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'")

MODULE_SCRIPT = re.compile(r'[ \t]*<script type="module" src="/static/js/(?P<path>[\w/.-]+\.js)"></script>\n?')
STATIC_REF = re.compile(r'(?P<attr>href|src)="/static/(?P<path>[\w/.-]+)"')
APP_LINK = re.compile(r'href="(?P<path>/[^"]*)"')


def clip(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[:n - 1].rstrip() + "…"


def summary(page: str, initial: dict, models: dict) -> str:
    """The state the snapshot holds, in words, for its note."""
    s = initial["state"]
    name = models[s["model"]]["name"]
    if page == "explorer":
        return f"“{clip(s['text'])}” · {name} · layer {s['layer']}, head {s['head']}"
    if page == "explain":
        return f"“{clip(s['text'])}” · {name} · layer {s['layer']}, head {s['head']}, query token {s['token']}"
    if page == "compare":
        return f"“{s['word']}” in {len(s['sentences'])} sentences · {name}"
    return f"“{clip(s['text'])}” · {name}"


def snapshot_html(page: str, initial: dict, q: QueryParams, pack: dict, server: str | None) -> tuple[str, list[str], list[str]]:
    """The page's HTML as the server renders it, made to run from the folder -> (html, its module
    entries in order, the static files it links)."""
    text = page_html(page, initial, q, plotly="plotly.min.js")
    entries = [m["path"] for m in MODULE_SCRIPT.finditer(text)]
    if not entries:
        raise PackError(f"templates/{page}.html loads no module from /static/js: nothing to bundle")
    first = MODULE_SCRIPT.search(text)
    text = (text[:first.start()] + '  <link rel="stylesheet" href="offline.css">\n  <script src="offline.js" defer></script>\n'
            '  <script src="app.js" defer></script>\n' + MODULE_SCRIPT.sub("", text[first.start():]))
    files = sorted({m["path"] for m in STATIC_REF.finditer(text)})
    text = STATIC_REF.sub(lambda m: f'{m["attr"]}="static/{m["path"]}"', text)
    # the app's other pages and files: on the server the URL named, else left as they are (offline.js
    # catches a click on one and says it needs the server)
    if server:
        text = APP_LINK.sub(lambda m: f'href="{server}{m["path"]}"', text)
    head = (f'<head>\n  <meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '  <meta name="generator" content="attnscope pack">')
    if text.count("<head>") != 1 or text.count("</body>") != 1:
        raise PackError(f"templates/{page}.html: expected one <head> and one </body>")
    text = text.replace("<head>", head, 1)
    data = htmlsafe_json_dumps(pack, dumps=TEMPLATES.env.policies["json.dumps_function"])  # as |tojson writes #initial
    text = text.replace("</body>", f'  <script type="application/json" id="attnscope-pack">{data}</script>\n</body>', 1)
    left = re.findall(r'(?:src|href)="/(?!/)[^"]*"', text) if server else re.findall(r'src="/[^"]*"', text)
    if left:
        raise PackError(f"templates/{page}.html links {left[0]}, which the pack cannot ship")
    return text, entries, files


def build(url: str, out, cache_dir=None, quiet: bool = False) -> dict:
    """Write the snapshot of url into out -> {"dir", "page", "model", "files", "modules", "answers"}."""
    path, page, q, server = parse_url(url)  # a URL that is not an attnscope page fails here, at once
    registry = shared_registry(cache_dir)  # the notebook API's and `attnscope export`'s registry
    model_id = registry.resolve(q.get("model"))  # an unknown model fails here, before the bar
    out = writable_dir(Path(out), "the pack", PackError)
    requests_done = []
    with Progress(5, quiet=quiet) as p:
        p.next(f"loading {model_id}" if converted(registry, model_id)
               else f"loading {model_id}: converting its weights to float32 (first load only)")
        registry.get(model_id)
        runner = Runner(registry, Settings.model_construct())  # the caches' defaults: no server settings needed
        p.next(f"computing the {page} page's data with {model_id}")
        initial = PAGES[path][1](runner, q)  # the state and first view exactly as the live page computes them
        check_state(runner, page, q, initial)
        answers = []
        for api_path, body in requests_at_load(runner, page, initial):
            answers.append({"path": api_path, "body": body, "status": 200, "answer": answer(runner, api_path, body)})
            requests_done.append(api_path)

        p.next("bundling the page's code")
        models = {m["id"]: m for m in initial["models"]}
        off = OFFLINE[page]
        pack = {"page": page, "url": url, "live": url.strip() if server else None, "server": server,
                "made": date.today().isoformat(), "state": summary(page, initial, models), "answers": answers,
                "controls": list(off.controls), "works": off.works, "needs": off.needs,
                "keep": list(off.keep) if off.keep is not None else None}
        html, entries, files = snapshot_html(page, initial, q, pack, server)
        script, modules = bundle(entries)

        p.next("writing plotly.min.js, the stylesheets and the scripts")
        shutil.copyfile(plotly_path(), out / "plotly.min.js")
        for f in files:
            (out / "static" / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(STATIC / f, out / "static" / f)
        (out / "app.js").write_text(script, encoding="utf-8")
        for f in ("offline.js", "offline.css"):
            shutil.copyfile(RUNTIME / f, out / f)
        p.next("writing index.html")
        (out / "index.html").write_text(html, encoding="utf-8")
    return {"dir": out, "page": page, "model": model_id, "modules": modules, "answers": requests_done,
            "files": ["index.html", "app.js", "offline.js", "offline.css", "plotly.min.js"] + [f"static/{f}" for f in files]}
