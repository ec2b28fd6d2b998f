"""The lesson's content: its sentences (also the pages' and embeds' defaults)."""

LENS_SENTENCE = "The capital of France is Paris, and the capital of Italy is"
MOLE_SENTENCES = ["American shrew mole", "one mole of carbon dioxide", "take a biopsy of the mole"]
COMPARE_DEFAULT = ("mole", MOLE_SENTENCES)
TOWER_SENTENCES = ["the Eiffel tower", "a miniature tower"]
FRANCE_SENTENCE = "The capital of France is"
