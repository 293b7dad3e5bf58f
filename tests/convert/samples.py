"""Fixed texts for the conversion tests: tokenizer edge cases and a passage for logits."""

from __future__ import annotations

# Tokenization must agree on all of these: accents, CJK, code, emoji (incl. ZWJ sequences),
# leading and repeated spaces, tabs, newlines, digits, contractions, special-looking text.
TOKENIZER_SAMPLES = [
    "Hello world",
    " leading space",
    "   three leading spaces and trailing   ",
    "Crème brûlée à la café: naïve façade, Ångström, Straße, ÉCOLE",
    "日本語のテキストと中文字符，한국어 문장。",
    "def square(x: int) -> int:\n    return x ** 2  # comment\n\n\tif x != 0: pass",
    "emoji 🦙🚀 and 😶\u200d🌫️ and 👨\u200d👩\u200d👧 ✅",
    "line one\nline two\n\n\nline five\r\nwindows",
    "numbers 1234567 3.14159 -42 1e-5 0x1F",
    "I've been told he's there; 'RE you sure? We'Ve a'lL",
    "MiXeD CaSe WORDS and snake_case_names and camelCaseNames",
    "<|im_start|>user\nspecial tokens in text<|im_end|>",
    "Ελληνικά, русский текст, עברית, العربية",
    "....!!!???---===```\"\"\"''' {}[]()<>",
    "",
]

# A ~300-token passage (prose, list, code, numbers) for comparing logits position by position.
LOGITS_TEXT = """The old lighthouse stood at the edge of the cliff, its white paint peeling after
decades of salt and wind. Every evening, the keeper climbed the one hundred and twelve steps to
light the lamp, and every morning he wrote a short note in the logbook: the weather, the ships
he had seen, and anything unusual on the water.

Here is what a typical week looked like:
1. Monday: fog until noon, two fishing boats, one cargo ship heading north.
2. Tuesday: clear skies, a pod of dolphins near the rocks.
3. Wednesday: strong winds from the west; the lamp needed a new wick.

Years later, his granddaughter turned the logbooks into a small program:

def busiest_day(entries):
    counts = {}
    for day, ships in entries:
        counts[day] = counts.get(day, 0) + len(ships)
    return max(counts, key=counts.get)

She found that Fridays were the busiest, with an average of 4.5 ships, and that the quietest
month was February. The lighthouse is automated now, but the logbooks remain in the museum in
town, where visitors can read the keeper's careful handwriting and imagine the sound of the sea.
"""

# Text the tiny test tokenizers are trained on: covers the samples' scripts and symbols.
TRAINING_TEXT = "\n".join(TOKENIZER_SAMPLES + LOGITS_TEXT.splitlines()) + "\n" + "\n".join([
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "Le cœur a ses raisons que la raison ne connaît point. À bientôt!",
    "天気がいいから、散歩しましょう。我们明天见。",
    "for i in range(10):\n    print(i, i * i)",
    "Numbers: 12, 345, 6789, 3.5, 2e10; symbols: @#$%^&*_+|~",
])
