"""The lesson's content, in one place: its sentences (also the pages' and embeds' defaults) and the
text of its six sections, numbers filled in from the lesson's data (app.payloads.lesson_data).
/lesson (templates/lesson.html and static/js/lesson.js, through the page's inline JSON) and
`attnscope lesson-pack` all show these strings; none of them writes lesson prose of its own."""

import math

from .style import visible

LESSON_SENTENCE = "a fluffy blue creature roamed the verdant forest"
LENS_SENTENCE = "The capital of France is Paris, and the capital of Italy is"
MOLE_SENTENCES = ["American shrew mole", "one mole of carbon dioxide", "take a biopsy of the mole"]
COMPARE_DEFAULT = ("mole", MOLE_SENTENCES)
TOWER_SENTENCES = ["the Eiffel tower", "a miniature tower"]
FRANCE_SENTENCE = "The capital of France is"
# the head every view opens on (page, embed, export, notebook, CLI): in the lesson sentence it reads
# 'creature' from its adjectives as well as any early head
DEFAULT_LAYER, DEFAULT_HEAD = 2, 3

TITLES = {"tokens": "1. Every token starts alone", "adjectives": "2. Adjectives update the noun (mostly)",
          "mole": "3. One word, three meanings: mole", "towers": "4. The Eiffel tower and a miniature tower",
          "heads": "5. Many heads, different jobs", "ablation": "6. Switch heads off"}


def quoted(text: str) -> str:
    """A token in running text as the app shows it (static/js/tokens.js quoted()): no leading space."""
    return f"‘{visible(text.strip()) if text.strip() else visible(text)}’"


def pct(x: float) -> str:
    return f"{math.floor(100 * float(x) + 0.5)}%"  # halves round up, as JS toFixed(0) does


def head_name(h: dict) -> str:
    return f"L{h['layer']}H{h['head']}"


def sections(lesson: dict) -> dict[str, dict]:
    """{section id: {"title", "p": [paragraphs], ...}} with the model's numbers; towers add "captions"
    (one per sentence), mole "sentences", heads "list" ([name, the head and its score, formula])."""
    m, f = lesson["model"], lesson["fluffy"]
    toks = f["tokens"]
    split = [visible(t["text"]) for t in toks if not t["text"].startswith(" ") and t["start"] > 0]
    out = {"tokens": [
        f"{m['name']} reads “{f['text']}” as {len(toks)} tokens. Common words are one token each; a rarer word is "
        f"split into pieces{' (here ' + ', '.join(f'“{s}”' for s in split) + ')' if split else ''}. Each token starts "
        "as its own context-free vector of numbers: the same vector wherever the token appears."]}

    best = f["heads"][0]
    q = quoted(toks[f["query"]]["text"])
    adj = " and ".join(quoted(toks[k]["text"]) for k in f["keys"])
    prev_top = ", ".join(head_name(h) for h in lesson["head_finder"]["top"]["previous"][:3])
    out["adjectives"] = [
        f"The textbook picture: the adjectives {adj} update the noun {q}, so that it comes to mean a fluffy, blue "
        f"creature. Searching all {m['n_layers'] * m['n_heads']} heads of the real model, layer {best['layer']}, "
        f"head {best['head']} comes closest: {q} puts {pct(best['share'])} of its attention on {adj} (arrows "
        "above; thicker means more).",
        "The next closest heads: " + ", ".join(f"{head_name(h)} ({pct(h['share'])})" for h in f["heads"][1:]) + ".",
        f"The honest gap: the heads that do this most are largely previous-token heads (the head finder's top "
        f"previous-token heads are {prev_top}): they look at the word just before any word, and here the words "
        f"before {q} happen to be its adjectives. A typical head instead sends {pct(best['median_first_token'])} "
        f"of {q}'s attention (the median over all heads) to the very first token, an “attention sink” that real "
        "models use as a place to put attention they do not need."]

    last, n = lesson["mole"]["similarity"][-1], len(lesson["mole"]["occurrences"])
    low = min(float(last[a][b]) for a in range(n) for b in range(a + 1, n))
    out["mole"] = [
        "“mole” means an animal, a unit of chemistry and a mark on the skin in these three sentences, but it is "
        "the same token in all of them, so at the embedding its three vectors are identical: similarity 1. Layer "
        "by layer, attention mixes in the rest of each sentence and the vectors drift apart; at the last layer "
        f"the least similar pair is at {low:.2f}."]

    out["towers"] = [
        "The word before “tower” changes what a tower is. In each sentence a head carries that word into “tower”; "
        "that is the step that lets later layers treat an Eiffel tower as a landmark and a miniature tower as a toy."]
    captions = [f"“{t['text']}”: in layer {t['heads'][0]['layer']}, head {t['heads'][0]['head']}, "
                f"{quoted(t['tokens'][t['query']]['text'])} puts {pct(t['heads'][0]['share'])} of its attention on "
                f"{quoted(t['tokens'][t['query'] - 1]['text'])}." for t in lesson["towers"]]

    hf = lesson["head_finder"]
    out["heads"] = ["A layer runs many heads in parallel, and the model has many layers. Scoring every head on simple "
                    "patterns finds a few clear specialists:"]
    finder = [[name, f"layer {top[0]['layer']}, head {top[0]['head']} ({top[0]['score']:.2f})", hf["formulas"][name]]
              for name, top in hf["top"].items()]

    fr = lesson["france"]
    i = len(fr["tokens"]) - 1
    orig, now = fr["ablated"]["original"][i], fr["ablated"]["predictions"][i]
    now_prob = {p["id"]: p["prob"] for p in now}
    first = quoted(orig[0]["text"])
    falls = (f"falls to {pct(now_prob[orig[0]['id']])}" if orig[0]["id"] in now_prob
             else f"falls out of the top {len(now)}")
    out["ablation"] = [
        f"“{fr['text']}” → the model answers {first} ({pct(orig[0]['prob'])}). The heads through which the last "
        f"token reads {quoted('France')} most are {', '.join(head_name(h) for h in fr['heads_to_france'])}. Switch "
        f"those {len(fr['heads_to_france'])} heads off (their output set to zero) and run the model again: its top "
        f"answer becomes {quoted(now[0]['text'])} ({pct(now[0]['prob'])}), and {first} {falls}. The country still "
        "reaches the last token by other paths, but much less of it: a head is a route for information."]

    text = {k: {"title": TITLES[k], "p": p} for k, p in out.items()}
    text["mole"]["sentences"] = list(lesson["mole_sentences"])
    text["towers"]["captions"] = captions
    text["heads"]["list"] = finder
    return {k: text[k] for k in TITLES}
