"""Turn markdown-ish LLM text into the words a TTS voice should say.

`speakable()` is pure and total: any string goes in, plain prose comes out. It removes what a
voice would otherwise read out symbol by symbol (emphasis markers, heading hashes, list markers,
table pipes, HTML tags, link syntax, fenced code) and keeps what carries meaning.

Rules chosen here:
- inline code keeps its content (`os.path` -> os.path), only whitespace is collapsed;
  fenced code blocks (fences at a line start, as in CommonMark) vanish, also unclosed ones;
- a link keeps its label, an image vanishes, a bare URL becomes "the link";
- a single `*` next to a number is multiplication and is spoken "times" (2*3, 2 * x, x * 2);
  `**` between two digits is spoken "to the power of"; every other `*` is emphasis and vanishes;
- `_` is removed only at word edges, so snake_case identifiers survive;
- table rows become their cells separated by commas; separator rows and rules vanish;
- decimals, times, versions, domains, apostrophes, hyphens and emoji are left untouched;
- text with no letter, digit or symbol (only punctuation, like "...") says nothing: "".
"""

from __future__ import annotations

import html
import re
import unicodedata

__all__ = ["LINK_WORD", "speakable", "strip_line_markers"]

LINK_WORD = "the link"

_PLACEHOLDER_OPEN = "\ue000"
_PLACEHOLDER_CLOSE = "\ue001"

_CR_RE = re.compile(r"\r\n?")
_FENCED_BLOCK_RE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[^\n]*(?:\n.*?(?:^[ \t]*(?P=fence)[`~]*[ \t]*$|\Z)|\Z)",
    re.MULTILINE | re.DOTALL,
)
_ESCAPE_RE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~>])")
_INLINE_CODE_RE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_PLACEHOLDER_RE = re.compile(f"{_PLACEHOLDER_OPEN}(\\d+){_PLACEHOLDER_CLOSE}")
_IMAGE_RE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")
_LINK_RE = re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)")
_REFERENCE_LINK_RE = re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]")
_LINK_DEFINITION_RE = re.compile(r"^[ \t]*\[[^\]\n]+\]:[ \t]*\S+.*$", re.MULTILINE)
_AUTOLINK_RE = re.compile(r"<(?:https?://|www\.|mailto:)[^>\s]*>", re.IGNORECASE)
_LINK_REMNANT_RE = re.compile(r"\]\([^)\s]*\)")
_CHECKBOX_RE = re.compile(r"\[[ xX]\](?=[ \t]|$)")
_BRACKET_RE = re.compile(r"[\[\]]")
_HTML_BREAK_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)
_HTML_TAG_RE = re.compile(
    r"</?(?:a|abbr|b|blockquote|br|center|code|del|details|div|em|font|h[1-6]|hr|i|img|ins|kbd|li|mark"
    r"|ol|p|pre|s|small|span|strike|strong|sub|summary|sup|table|tbody|td|th|thead|tr|u|ul)"
    r"(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_BARE_URL_RE = re.compile(
    r"(?<![\w.])(?:https?://|www\.)[^\s<>\"'\[\]()]*[^\s<>\"'\[\]().,;:!?]",
    re.IGNORECASE,
)
_RULE_LINE_RE = re.compile(r"^[ \t]*(?=[^\n]*[-*_=])[-*_=:|+ \t]+$", re.MULTILINE)
_HEADING_CLOSE_RE = re.compile(r"[ \t]+#+[ \t]*$")
_LINE_MARKERS_RE = re.compile(r"^[ \t]*(?:>[ \t]?)*[ \t]*(?:#{1,6}(?:[ \t]+|$))?(?:(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$))?")
_TABLE_ROW_RE = re.compile(r"^[ \t]*\|(.*?)\|?[ \t]*$", re.MULTILINE)
_TABLE_PIPE_RE = re.compile(r"[ \t]*\|[ \t]*")
_POWER_RE = re.compile(r"(?<=\d)[ \t]*\*\*[ \t]*(?=\d)")
_TIMES_RE = re.compile(
    r"(?<=[\w)])\*(?=[\d(])|(?<=\d)\*(?=[\w(])"
    r"|(?<=[\w)])[ \t]+\*[ \t]+(?=[\d(])|(?<=\d)[ \t]+\*[ \t]+(?=[\w(])"
)
_STRIKE_RE = re.compile(r"~~")
_EDGE_UNDERSCORE_RE = re.compile(r"(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])")
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([,.;:!?])(?=\s|$)")
_COMMA_BEFORE_STOP_RE = re.compile(r"[,;:]+(?=[.!?])")
_REPEATED_COMMA_RE = re.compile(r",(?:\s*,)+")
_LEADING_PUNCT_RE = re.compile(r"^[\s,;:]+")
_WHITESPACE_RE = re.compile(r"\s+")


def speakable(text: str) -> str:
    """Return `text` as plain spoken prose on one line ("" if nothing is worth saying)."""
    text = _CR_RE.sub("\n", text)
    text = _FENCED_BLOCK_RE.sub("\n", text)
    text = _ESCAPE_RE.sub(r"\1", text)
    text, codes = _protect_inline_code(text)
    text = _strip_links_and_html(text)
    text = _strip_block_markup(text)
    text = _strip_emphasis(text)
    text = html.unescape(text)
    text = _tidy(_restore_inline_code(text, codes))
    return text if _says_something(text) else ""


def strip_line_markers(line: str) -> str:
    """Drop the block markers at the start of one line: indent, `>`, `#` and list markers."""
    return _LINE_MARKERS_RE.sub("", line, count=1)


def _protect_inline_code(text: str) -> tuple[str, list[str]]:
    """Swap each inline code span for a placeholder so no later rule touches its content."""
    codes: list[str] = []

    def stash(match: re.Match[str]) -> str:
        codes.append(" ".join(match.group(2).replace("`", " ").split()))
        return f"{_PLACEHOLDER_OPEN}{len(codes) - 1}{_PLACEHOLDER_CLOSE}"

    return _INLINE_CODE_RE.sub(stash, text), codes


def _restore_inline_code(text: str, codes: list[str]) -> str:
    return _PLACEHOLDER_RE.sub(lambda match: codes[int(match.group(1))], text)


def _strip_links_and_html(text: str) -> str:
    text = _IMAGE_RE.sub("", text)
    text = _LINK_RE.sub(r"\1", text)
    text = _REFERENCE_LINK_RE.sub(r"\1", text)
    text = _LINK_DEFINITION_RE.sub("", text)
    text = _AUTOLINK_RE.sub(LINK_WORD, text)
    text = _LINK_REMNANT_RE.sub("", text)
    text = _CHECKBOX_RE.sub("", text)
    text = _BRACKET_RE.sub("", text)
    text = _HTML_BREAK_RE.sub(" ", text)
    text = _HTML_TAG_RE.sub("", text)
    return _BARE_URL_RE.sub(LINK_WORD, text)


def _strip_block_markup(text: str) -> str:
    text = _RULE_LINE_RE.sub("", text)
    text = "\n".join(_strip_line(line) for line in text.split("\n"))
    text = _TABLE_ROW_RE.sub(lambda match: _TABLE_PIPE_RE.sub(", ", match.group(1).strip()), text)
    return _TABLE_PIPE_RE.sub(", ", text)


def _strip_line(line: str) -> str:
    """Block markers at the start of a line and closing heading hashes at its end ("Title ##")."""
    return strip_line_markers(_HEADING_CLOSE_RE.sub("", line))


def _strip_emphasis(text: str) -> str:
    text = _POWER_RE.sub(" to the power of ", text)
    text = _TIMES_RE.sub(" times ", text)
    text = text.replace("*", "")
    text = _STRIKE_RE.sub("", text)
    text = _EDGE_UNDERSCORE_RE.sub("", text)
    return text.replace("`", "")


def _says_something(text: str) -> bool:
    """True if `text` holds a letter, a digit or a symbol such as an emoji, not only punctuation."""
    return any(char.isalnum() or unicodedata.category(char) == "So" for char in text)


def _tidy(text: str) -> str:
    text = _WHITESPACE_RE.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT_RE.sub(r"\1", text)
    text = _REPEATED_COMMA_RE.sub(",", text)
    text = _COMMA_BEFORE_STOP_RE.sub("", text)
    return _LEADING_PUNCT_RE.sub("", text).strip()
