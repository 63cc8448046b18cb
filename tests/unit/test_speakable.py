"""speakable(): markdown-ish text in, the words a voice should say out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.speakable import LINK_WORD, speakable, strip_line_markers

STRIPPED_MARKUP = [
    ("**Bold** and *italic* words", "Bold and italic words"),
    ("__strong__ and _emphasis_ here", "strong and emphasis here"),
    ("~~old~~ new", "old new"),
    ("***both*** at once", "both at once"),
    ("Run `pip install requests` now", "Run pip install requests now"),
    ("Call ``a`b`` here", "Call a b here"),
    ("The `__init__` method", "The __init__ method"),
    ("# Heading", "Heading"),
    ("### Third level ###", "Third level"),
    ("> quoted text", "quoted text"),
    ("> > nested quote", "nested quote"),
    ("- dash item", "dash item"),
    ("* star item", "star item"),
    ("+ plus item", "plus item"),
    ("1. numbered item", "numbered item"),
    ("12) paren item", "paren item"),
    ("   - nested item", "nested item"),
    ("- [ ] open task", "open task"),
    ("- [x] done task", "done task"),
    ("| Name | Age |", "Name, Age"),
    ("|------|:---:|", ""),
    ("left | right", "left, right"),
    ("---", ""),
    ("* * *", ""),
    ("<b>bold</b> and <br/> more", "bold and more"),
    ('<span class="x">text</span>', "text"),
    ("Fish &amp; chips", "Fish & chips"),
    ("\\*not bold\\*", "not bold"),
]

LINKS_AND_URLS = [
    ("See [the docs](https://docs.python.org/3/) today.", "See the docs today."),
    ('See [the docs](https://x.org "Title") today.', "See the docs today."),
    ("Read [this][1] first.", "Read this first."),
    ("[1]: https://example.com/page", ""),
    ("![A cat](cat.png) Cute.", "Cute."),
    ("Visit https://example.com/a?b=1. Then rest.", f"Visit {LINK_WORD}. Then rest."),
    ("Go to www.python.org, then read.", f"Go to {LINK_WORD}, then read."),
    ("Open <https://example.com> now", f"Open {LINK_WORD} now"),
    ("(see https://x.io/y)", f"(see {LINK_WORD})"),
]

PROSE_KEPT = [
    "Pi is about 3.14, not 3.",
    "The meeting is at 10:30 tomorrow.",
    "Dr. Smith arrived at 9 a.m. from the U.S.",
    "It's a well-known, tried-and-true method.",
    "Use tools, e.g. a hammer, i.e. something heavy.",
    "Version v1.2.3 is on example.com now.",
    "The variable my_var_name holds the count.",
    "I love it 😀 so much 🎉",
    "J. R. R. Tolkien wrote it.",
    "Costs are ~5 dollars, 50% off.",
    "C# and F# are languages.",
    "Write to a@b.com for help.",
    "x<y and y>z are comparisons.",
    "Rock 'n' roll, isn't it?",
]

ARITHMETIC = [
    ("2*3 is 6", "2 times 3 is 6"),
    ("2 * 3 is 6", "2 times 3 is 6"),
    ("x*2 or 2*x", "x times 2 or 2 times x"),
    ("2**10 is 1024", "2 to the power of 10 is 1024"),
    ("**2** apples", "2 apples"),
    ("*5* apples", "5 apples"),
    ("a * b", "a b"),
]

CODE_BLOCKS = [
    ("Run it:\n\n```bash\npip install x\n```\n\nDone.", "Run it: Done."),
    ("Before\n~~~\nsecret = 1\n~~~\nafter", "Before after"),
    ("Start\n```python\nnever closed = True", "Start"),
    ("  ```\n  indented\n  ```\nok", "ok"),
]


@pytest.mark.parametrize(("text", "expected"), STRIPPED_MARKUP)
def test_markup_is_stripped(text: str, expected: str) -> None:
    assert speakable(text) == expected


@pytest.mark.parametrize(("text", "expected"), LINKS_AND_URLS)
def test_links_keep_their_label_and_urls_become_a_word(text: str, expected: str) -> None:
    assert speakable(text) == expected


@pytest.mark.parametrize("text", PROSE_KEPT)
def test_normal_prose_is_not_mangled(text: str) -> None:
    assert speakable(text) == text


@pytest.mark.parametrize(("text", "expected"), ARITHMETIC)
def test_a_star_next_to_a_number_is_multiplication(text: str, expected: str) -> None:
    assert speakable(text) == expected


@pytest.mark.parametrize(("text", "expected"), CODE_BLOCKS)
def test_fenced_code_is_not_spoken(text: str, expected: str) -> None:
    assert speakable(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  lots   of\n\n spaces\t here ", "lots of spaces here"),
        ("A list:\n- one\n- two", "A list: one two"),
        ("Before , after", "Before, after"),
        ("Keep .bashrc intact", "Keep .bashrc intact"),
    ],
)
def test_whitespace_is_collapsed(text: str, expected: str) -> None:
    assert speakable(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "...", "**", "---", "```", "| --- |", "<br>", "![x](y.png)"])
def test_nothing_worth_saying_gives_empty_string(text: str) -> None:
    assert speakable(text) == ""


def test_emoji_alone_is_kept() -> None:
    assert speakable("🎉") == "🎉"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("- item", "item"),
        ("## 1. Setup", "Setup"),
        ("> - quoted item", "quoted item"),
        ("3.14 is pi", "3.14 is pi"),
        ("-5 degrees", "-5 degrees"),
        ("**Bold** start", "**Bold** start"),
        ("#hashtag", "#hashtag"),
    ],
)
def test_strip_line_markers(line: str, expected: str) -> None:
    assert strip_line_markers(line) == expected


@given(st.text(alphabet="ab1 .,*_#`|[]()<>!~-:\n😀", max_size=120))
def test_output_is_one_clean_line(text: str) -> None:
    spoken = speakable(text)
    assert spoken == spoken.strip()
    assert "\n" not in spoken
    assert "  " not in spoken
    assert "`" not in spoken
