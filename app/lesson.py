"""The lesson's content, in one place: its sentences (also the pages' and embeds' defaults) and the
text of its six sections, numbers filled in from the lesson's data (app.payloads.lesson_data).
/lesson (templates/lesson.html and static/js/lesson.js, through the page's inline JSON) and
`attnscope lesson-pack` all show these strings; none of them writes lesson prose of its own."""

import math

from . import style
from .style import token_label

LESSON_SENTENCE = "a fluffy blue creature roamed the verdant forest"
LENS_SENTENCE = "The capital of France is Paris, and the capital of Italy is"
MOLE_SENTENCES = ["American shrew mole", "one mole of carbon dioxide", "take a biopsy of the mole"]
MOLE_MEANINGS = ["the animal", "the unit", "the skin mark"]  # what "mole" means in each, for legends
COMPARE_DEFAULT = ("mole", MOLE_SENTENCES)
TOWER_SENTENCES = ["the Eiffel tower", "a miniature tower"]
FRANCE_SENTENCE = "The capital of France is"
# the head every view opens on (page, embed, export, notebook, CLI): in the lesson sentence it reads
# 'creature' from its adjectives as well as any early head
DEFAULT_LAYER, DEFAULT_HEAD = 2, 3

TITLES = {"tokens": "1. Every token starts as a vector", "adjectives": "2. Adjectives update the noun: what moves, not only where it looks",
          "mole": "3. One word, three meanings: mole", "towers": "4. The Eiffel tower and a miniature tower",
          "heads": "5. Many heads, different jobs", "ablation": "6. Switch heads off"}
# each section's "try your own sentence" box: what it opens
TRY = {"tokens": "Try your own sentence: its tokens, in the explorer",
       "adjectives": "Try your own sentence: this head, in the explorer",
       "mole": "Try your own sentence with “mole”: compare it with the three",
       "towers": "Try your own tower (“the … tower”): the same head, in the explorer",
       "heads": "Try your own sentence: every head scored, on the layer-by-layer page",
       "ablation": "Try your own sentence: switch the same heads off, in the explorer"}
MEASURES = {"weight": "where it looks (weight)", "moved": "what it moved"}  # the arrows' two readings
PATTERNS = {"previous": "previous token", "first": "first token", "self": "self", "broad": "broad", "induction": "induction"}


def quoted(t) -> str:
    """A token in running text as the app shows it (static/js/tokens.js quoted()): no leading space; t is its
    text, or the token as the API sends it (a byte piece then reads as its character: ‘🦊 (1/3)’)."""
    return style.quoted(t)


def pct(x: float) -> str:
    return f"{math.floor(100 * float(x) + 0.5)}%"  # halves round up, as JS toFixed(0) does


def num(x: float, digits: int = 2) -> str:
    return f"{float(x):.{digits}f}".replace("-", "−")


def vec(xs, k: int = 4, size: int | None = None) -> str:
    """The first k numbers of a vector, and how many there are (size: when xs holds only the first ones)."""
    return "[" + ", ".join(num(x, 3) for x in list(xs)[:k]) + f", …] ({size or len(xs)} numbers)"


def head_name(h: dict) -> str:
    return f"L{h['layer']}H{h['head']}"


def head_words(h: dict) -> str:
    return f"layer {h['layer']}, head {h['head']}"


def listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def word_before(tokens: list[dict], q: int) -> tuple[str, list[str]]:
    """The word just before token q, and its pieces when the tokenizer splits it ('Eiffel': 'E', 'iffel')."""
    start = q - 1
    while start > 0 and not tokens[start]["text"].startswith(" "):
        start -= 1
    pieces = [t["text"] for t in tokens[start:q]]
    return "".join(pieces).strip(), pieces


def tokens_section(lesson: dict) -> dict:
    m, f = lesson["model"], lesson["fluffy"]
    toks, emb = f["tokens"], f["embedding"]
    split = [token_label(t) for t in toks if not t["text"].startswith(" ") and t["start"] > 0]
    q = f["query"]
    p = [f"{m['name']} reads “{f['text']}” as {len(toks)} tokens. Common words are one token each; a rarer word is "
         f"split into pieces{' (here ' + ', '.join(f'“{s}”' for s in split) + ')' if split else ''}.",
         f"Each token starts as its own context-free vector, a row of the model's embedding matrix: the same "
         f"{emb['d_model']} numbers wherever the token appears. {quoted(toks[q])} is {vec(emb['first'][q], size=emb['d_model'])}, of "
         f"length {num(emb['norm'][q])}."]
    vectors = [f"{quoted(t)} (token {i}, id {t['id']}) = {vec(emb['first'][i], size=emb['d_model'])}, length {num(emb['norm'][i])}"
               for i, t in enumerate(toks)]
    return {"p": p, "vectors": vectors, "hint": "Hover or focus a token to see the first of its numbers."}


def card(lesson: dict) -> dict:
    """One head's computation for 'creature', with the model's numbers: lines of [formula, what it is]
    and a table, one row per key."""
    c, toks = lesson["fluffy"]["card"], lesson["fluffy"]["tokens"]
    q = quoted(toks[c["query"]])
    norm = "normalised (RMSNorm)" if c["rope"] else "as the layer reads it"
    rope = "; q and k are then turned by their positions (RoPE) before they are dotted" if c["rope"] else ""
    lines = [["e", f"the vector of {q} entering layer {c['layer']}, {norm}: {vec(c['e'])}, length ‖e‖ = {num(c['e_norm'])}"],
             ["q = W_q e", f"what {q} looks for: {vec(c['q'])}"],
             ["k_j = W_k e_j", f"what each token j it may see (0–{c['query']}) offers: {c['d_head']} numbers each{rope}"],
             ["v_j = W_v e_j", f"what token j passes on if it is chosen: {c['d_head']} numbers each"]]
    head = ["key j", "q·k_j", f"s_j = q·k_j ÷ √{c['d_head']}", "w_j = softmax(s)_j", "‖v_j W_O‖", "moved = w_j ‖v_j W_O‖",
            "share moved"]
    rows = [[f"{k['index']} {quoted(k['text'])}", num(k["dot"]), num(k["score"]), num(k["weight"], 3), num(k["v_out_norm"]),
             num(k["moved"]), pct(k["share"])] for k in c["keys"]]
    after = [["z = Σ_j w_j v_j", f"the head's output for {q}: {vec(c['z'])}, ‖z‖ = {num(c['z_norm'])}"],
             ["Δ = z W_O", f"back to {c['d_model']} numbers, added to the vector of {q} (with the other heads' and the "
              f"layer's bias): ‖Δ‖ = {num(c['out_norm'])}"]]
    return {"title": f"How {head_words(c)} computes the update of {q}", "lines": lines, "table": {"head": head, "rows": rows},
            "after": after}


def adjectives_section(lesson: dict) -> dict:
    m, f = lesson["model"], lesson["fluffy"]
    toks, c, sink = f["tokens"], f["card"], f["first_token"]
    q = quoted(toks[f["query"]])
    adj = " and ".join(quoted(toks[k]) for k in f["keys"])
    first = c["keys"][0]
    best = max((k for k in c["keys"] if k["index"] in f["keys"]), key=lambda k: k["share"])
    p = [f"The textbook picture: the adjectives {adj} update the noun {q}, so that it comes to mean a fluffy, blue "
         f"creature. Here is how one head computes the update of {q}, step by step with the model's numbers: {head_words(c)}, "
         "the head the explorer opens on."]
    p_card = [
        f"{q} puts {pct(first['weight'])} of its weight on {quoted(first['text'])}, the first token. But a weight says where "
        f"a head looks, not what it moves: what key j moves into {q} is its weight times the size of its value as the head "
        f"writes it, w_j ‖v_j W_O‖ (Kobayashi et al. 2020). The value of {quoted(first['text'])} is small "
        f"({num(first['v_out_norm'])} against {num(best['v_out_norm'])} for {quoted(best['text'])}), so it gives "
        f"{pct(first['share'])} of what moves, and {quoted(best['text'])} gives {pct(best['share'])} "
        f"({pct(best['weight'])} of the weight)."]
    n_heads = m["n_layers"] * m["n_heads"]
    p_sink = [
        f"This is general. Over all {n_heads} heads and every token of the sentence after the first, the first token takes "
        f"{pct(sink['weight'])} of the attention (an “attention sink”), yet per unit of weight it moves less: its value as a "
        f"head writes it, ‖v_0 W_O‖, is {num(sink['value_ratio'])} times the other tokens' (the median over heads). So it gives "
        f"{pct(sink['moved'])} of what moves: less than its share of the weight, still the largest single part. For {q}, "
        f"the median head puts {pct(sink['query_weight'])} of its weight on the first token, and {pct(sink['query_moved'])} "
        "of what it moves comes from there.",
        f"Which heads really move {adj} into {q}? Every head ranked by the share of what it moves into {q} that comes "
        "from them:"]
    pieces = {k: quoted(toks[k]) for k in f["keys"]}
    head = ["head", "moved from both", "weight on both"] + [f"moved from {pieces[k]}" for k in f["keys"]] + ["previous-token score"]
    rows = [[head_name(h), pct(h["moved"]), pct(h["weight"])] + [pct(k["moved"]) for k in h["keys"]] + [num(h["previous"])]
            for h in f["heads"]]
    prev = [head_name(h) for h in f["heads"] if h["previous"] >= 0.5]
    far = [h for h in f["heads"] if h["keys"][0]["moved"] > h["keys"][-1]["moved"]]
    last = quoted(toks[f["keys"][-1]])
    honest = [f"The honest picture: "
              + (f"{listing(prev)} {'are previous-token heads' if len(prev) > 1 else 'is a previous-token head'} "
                 f"(previous-token score 0.5 or more, key 0 left out: the head finder's formula, section 5): "
                 f"{'they carry' if len(prev) > 1 else 'it carries'} the word just before any word, and here that is "
                 f"{last}. " if prev else "none of them is a previous-token head (score 0.5 or more). ")
              + (" ".join(f"{head_name(h)} moves mostly {pieces[f['keys'][0]]} ({pct(h['keys'][0]['moved'])}), "
                          f"{f['query'] - f['keys'][0]} tokens back: the closest this model comes to the textbook picture."
                          for h in far[:1]) if far else
                 f"No head among them moves more of {pieces[f['keys'][0]]} than of {last}.")]
    moved_share = {"head": head, "rows": rows}
    return {"p": p, "card": card(lesson), "p_card": p_card, "p_sink": p_sink, "table": moved_share, "p_end": honest,
            "measures": MEASURES, "hint": "The arrows: where the head looks, or what it moved (each row's shares); hover or "
                                          "focus a token to see its row."}


def mole_section(lesson: dict) -> dict:
    mole, names = lesson["mole"], lesson["mole_meanings"]
    last, n = mole["similarity"][-1], len(mole["occurrences"])
    pairs = [f"{names[a]} and {names[b]} {float(last[a][b]):.2f}" for a in range(n) for b in range(a + 1, n)]
    p = ["“mole” means an animal, a unit of chemistry and a mark on the skin in these three sentences, but it is the same "
         "token in all of them, so at the embedding its three vectors are identical: similarity 1. Layer by layer, "
         "attention mixes in the rest of each sentence and the vectors drift apart; after the last layer: "
         f"{listing(pairs)}."]
    sentences = [f"{i + 1}. {names[i]}: “{s}”" for i, s in enumerate(lesson["mole_sentences"])]
    legend = [[f"{names[a]} vs {names[b]}", a, b] for a in range(n) for b in range(a + 1, n)]
    return {"p": p, "sentences": sentences, "legend": legend}


def towers_section(lesson: dict) -> dict:
    t, towers = lesson["tower_head"], lesson["towers"]
    before = [word_before(x["tokens"], x["query"]) for x in towers]
    split = [f"‘{w}’ is {len(ps)} tokens here, {listing([quoted(p) for p in ps])}" for w, ps in before if len(ps) > 1]
    reads = [quoted(x["tokens"][x["query"] - 1]) for x in towers]
    shares = "of what it moves into ‘tower’, " + listing([f"{pct(s)} comes from {r}" for s, r in zip(t["moved"], reads)])
    p = ["The word before “tower” changes what a tower is. Is there one head that carries that word into ‘tower’ in both "
         "sentences? Ranking every head by the smaller of its two shares of what moved:"]
    if min(t["moved"]) >= 0.5:
        p[0] += (f" {head_words(t)} does it in both: {shares}"
                 + (f" ({'; '.join(split)}: the head reads the last piece)" if split else "") + ". It is no tower "
                 f"specialist: its previous-token score is {num(t['previous'])} (key 0 left out), it carries the word "
                 "before any word.")
    else:
        p[0] += f" no head moves most of what it carries from the word before in both: for the closest, {head_words(t)}, {shares}."
    captions = [f"“{x['text']}”: in {head_words(t)}, ‘tower’ puts {pct(w)} of its weight on {r}, which gives {pct(s)} of "
                "what the head moves into it." for x, w, s, r in zip(towers, t["weight"], t["moved"], reads)]
    sim = lesson["tower_compare"]["similarity"]
    nexts = [f"after “{x['text']}”, " + ", ".join(f"{quoted(pr)} {pct(pr['prob'])}" for pr in preds)
             for x, preds in zip(towers, lesson["tower_next"])]
    p.append(f"Does the difference last? The two ‘tower’ vectors are identical at the embedding (similarity 1) and at "
             f"{float(sim[-1][0][1]):.2f} after the last layer. The model's next-token guesses: {'; '.join(nexts)}. These "
             "numbers show that the two towers end up apart; what the model makes of each, they do not say.")
    return {"p": p, "captions": captions}


def heads_section(lesson: dict) -> dict:
    hf = lesson["head_finder"]
    p = ["A layer runs many heads in parallel, and the model has many layers. Scoring every head on simple patterns "
         "finds a few clear specialists. Since most heads put most of their weight on the first token, each score here "
         "leaves key 0 out (each row renormalised over the other keys, as Neuronpedia's head dashboards do); beside it, "
         "the same score with key 0 kept, and on what the head moved:"]
    finder = []
    for row in hf["rows"]:
        h = row["heads"][0]
        kept = "" if row["name"] == row["pattern"] else f"with key 0: {num(h['kept'])}; "
        finder.append([PATTERNS[row["pattern"]], f"{head_words(h)} ({num(h['score'])}; {kept}what moved: {num(h['moved'])})",
                       hf["formulas"][row["name"]]])
    gaps = [(h["score"] - h["kept"], row, h) for row in hf["rows"] if row["name"] != row["pattern"] for h in row["heads"]]
    gap, row, h = max(gaps, key=lambda g: g[0])
    p_end = [f"Why both: with key 0 left out, what a head does with the weight the first token leaves it can top a list. "
             f"{head_name(h)}'s {PATTERNS[row['pattern']]} score is {num(h['score'])} without key 0 and {num(h['kept'])} "
             f"with it: it puts {pct(h['first'])} of its weight on the first token."] if gap > 0.3 else []
    return {"p": p, "list": finder, "p_end": p_end}


def ablation_section(lesson: dict) -> dict:
    fr = lesson["france"]
    i = len(fr["tokens"]) - 1
    orig, now = fr["ablated"]["original"][i], fr["ablated"]["predictions"][i]
    now_prob = {p["id"]: p["prob"] for p in now}
    first = quoted(orig[0])
    falls = (f"falls to {pct(now_prob[orig[0]['id']])}" if orig[0]["id"] in now_prob
             else f"falls out of the top {len(now)}")
    heads = fr["heads_to_france"]
    named = listing([f"{head_name(h)} ({pct(h['moved'])})" for h in heads])
    return {"p": [
        f"“{fr['text']}” → the model answers {first} ({pct(orig[0]['prob'])}). The heads that move the most of "
        f"{quoted('France')} into the last token (the largest shares of what they move into it) are {named}. "
        f"Switch those {len(heads)} heads off (their output set to zero) and run the model again: its top answer becomes "
        f"{quoted(now[0])} ({pct(now[0]['prob'])}), and {first} {falls}. A head is a route for information; "
        f"whatever {first} keeps came by other routes."]}


def sections(lesson: dict) -> dict[str, dict]:
    """{section id: {"title", "p": [paragraphs], "try": label, ...}} with the model's numbers. Extras: tokens
    "vectors" (one line per token) and "hint" (what hovering does: the live page's only); adjectives "card" (lines and a table: one head's math for the query),
    "p_card", "p_sink", "table" (heads ranked by what they moved), "p_end", "measures", "hint"; mole "sentences" and
    "legend"; towers "captions" (one per sentence); heads "list" ([pattern, the head and its scores, formula]),
    "p_end". Every paragraph ("p", "p_*") and caption is shown once, in this order within its section."""
    out = {"tokens": tokens_section(lesson), "adjectives": adjectives_section(lesson), "mole": mole_section(lesson),
           "towers": towers_section(lesson), "heads": heads_section(lesson), "ablation": ablation_section(lesson)}
    return {k: {"title": TITLES[k], "try": TRY[k]} | out[k] for k in TITLES}


def paragraphs(section: dict) -> list[str]:
    """Every paragraph and caption of a section, as a reader meets them."""
    return [p for key in ("p", "p_card", "p_sink", "p_end") for p in section.get(key, [])] + section.get("captions", [])
