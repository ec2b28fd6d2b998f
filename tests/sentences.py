"""Varied test sentences: unicode, emoji, numbers, code, whitespace, hostile text."""

SENTENCES = [
    "a fluffy blue creature roamed the verdant forest",
    "The Eiffel tower is taller than a miniature tower.",
    "one mole of carbon dioxide",
    "take a biopsy of the mole",
    "American shrew mole",
    "She sat on the river bank; he went to the bank to deposit $1,234.56.",
    "In 2024, 3.14159 × 10^3 ≈ 3141.59 — or is it?",
    "Emoji: 🦊🐻‍❄️👩🏽‍🔬 and flags 🇯🇵!",
    "日本語のテキストと中文文本，还有한국어.",
    "Ça va? Naïve façade, coöperate, Zürich, São Paulo.",
    "def f(x):\n    return x ** 2  # square\n\nprint(f(12))",
    "   leading and   multiple   spaces\tand\ttabs   ",
    "<script>alert('hi')</script> <img src=x onerror=alert(1)>",
    "RTL \u202eabc\u202c mark and \u200f Hebrew עברית and Arabic العربية",
    "NUL\x00byte and control\x07chars",
    "ALL CAPS SHOUTING AND lowercase whispering",
    "e=mc^2; E = mc²; ∑_{i=1}^{n} i = n(n+1)/2",
    "https://example.org/path?q=1&r=two#frag user@example.org",
]
