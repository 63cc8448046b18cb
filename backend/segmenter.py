"""Cut a streamed LLM reply into speakable segments for TTS, as early as each one is known.

`SpeechSegmenter.feed()` takes the raw reply text in chunks of any size and returns the segments
completed by that chunk; `flush()` returns the rest at the end of the reply. Every segment has been
through `speakable()` and is never empty. The text shown on screen is not touched: this module
only decides what is spoken. It does no I/O and keeps only the unfinished tail of the reply, so the
cost of a `feed()` call depends on the chunk, not on how long the reply already is.

Two layers:
- `SpeechSegmenter` itself sees lines. It waits for the first characters of each line to know what the line
  is (the wait ends at the first letter, or at the newline), then skips fenced code blocks
  (``` or ~~~ at a line start, split anywhere across chunks; a block is replaced by nothing, an
  unclosed one hides the rest of the reply), thematic breaks and table separator rows, strips
  heading hashes, blockquote and list markers, turns a table row into its cells joined by ", ",
  and streams everything else to the sentence layer. Every newline ends a segment: LLMs do not
  hard-wrap prose, so a line break is a paragraph, list item, heading or table row boundary.
- `_SentenceSplitter` sees the prose of one line and cuts it:
  * a sentence ends at a run of . ! ? (then optional closing quotes, brackets or emphasis markers)
    followed by whitespace; a "." with nothing after it yet waits for the next chunk;
  * not an end: titles (Dr., Mr., Mrs., Ms., Prof., St., vs. ...), e.g. and i.e., "No." before a
    digit, uppercase initialisms (U.S., U.K.), single capital initials (J. R. R. Tolkien), a number
    that opens the segment ("**1.** Install" is an enumeration), and lowercase abbreviations
    (etc., a.m., p.m., approx.) or an ellipsis (... or the … character) followed by a lowercase
    word or a digit; decimals, versions and domain names never have whitespace after their dots;
  * ";" is a clause boundary, not a sentence end; so are "," ":" (when followed by whitespace),
    a spaced dash (" - ", " – ", " — ") and an unspaced em dash between words;
  * the first segment of a reply is cut at the first clause boundary once it holds
    `min_first_words` words, or at a word boundary once it holds `max_first_words` words;
  * any later segment is cut at the first clause boundary once it holds `max_words` words, and at a
    word boundary once it holds `max_words * 3 // 2` words (a sentence with no clause boundary);
  * no clause cut inside inline code or a link label; any segment longer than
    `_MAX_SEGMENT_CHARS` characters without whitespace is cut where it stands.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from backend.speakable import speakable, strip_line_markers

__all__ = ["SpeechSegmenter"]

_TERMINATORS = frozenset(".!?…")
_CLOSERS = frozenset(")]}\"'”’*_~")
_CLAUSE_MARKS = frozenset(",;:")
_DASHES = frozenset("-–—")
_MAX_SEGMENT_CHARS = 1200
_LOOKAHEAD_CHARS = 16

_TITLE_ABBREVIATIONS = frozenset(
    {"dr", "mr", "mrs", "ms", "prof", "st", "sr", "jr", "mt", "vs", "e.g", "i.e", "fig", "cf", "viz"}
)
_LOWERCASE_ABBREVIATIONS = frozenset({"etc", "a.m", "p.m", "approx", "incl", "esp", "al"})
_OPENING_PUNCTUATION = "([{\"'“‘*_~"
_UPPERCASE_INITIALISM_RE = re.compile(r"(?:[A-Z]\.)+[A-Z]")
_LOWERCASE_INITIALISM_RE = re.compile(r"(?:[a-z]\.)+[a-z]")

# Characters a line may start with before we know what kind of line it is.
_MARKER_ALPHABET = frozenset(" \t-*+_=:|#>`~.)0123456789")
_MAX_PREFIX_CHARS = 80
_FENCE_OPEN_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_FENCE_CLOSE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*$")
_RULE_LINE_RE = re.compile(r"^[-*_=:|+ \t]*[-*_=][-*_=:|+ \t]*$")
_TABLE_ROW_START_RE = re.compile(r"^[ \t]*\|")
_TABLE_SEPARATOR_CELL_RE = re.compile(r"^:?-+:?$")
_MAX_TABLE_ROW_CHARS = 2000


class _Verdict(enum.Enum):
    BOUNDARY = enum.auto()
    NOT_BOUNDARY = enum.auto()
    NEED_MORE = enum.auto()


@dataclass(frozen=True)
class _Check:
    """What the character at the scan position turned out to be.

    `end` is where a BOUNDARY cuts, or where the scan resumes after a NOT_BOUNDARY that covers
    a run of characters (an ellipsis); 0 means just past the character.
    """

    verdict: _Verdict
    end: int = 0


_NOT_BOUNDARY = _Check(_Verdict.NOT_BOUNDARY)
_NEED_MORE = _Check(_Verdict.NEED_MORE)


class _SentenceSplitter:
    """Cut the prose of the current line into segments, scanning each character once."""

    def __init__(self, min_first_words: int, max_first_words: int, max_words: int) -> None:
        self._min_first_words = min_first_words
        self._max_first_words = max_first_words
        self._max_words = max_words
        self._hard_max_words = max(max_words, max_words * 3 // 2)
        self._first_pending = True
        self._buffer = ""
        self._reset_scan()
        self._in_code = False
        self._bracket_depth = 0

    def add(self, text: str) -> list[str]:
        """Append prose from the current line; return the segments it completes."""
        self._buffer += text
        return self._scan()

    def end_line(self) -> list[str]:
        """The line ended: everything buffered is a segment of its own."""
        segments = self._emit(len(self._buffer))
        self._in_code = False
        self._bracket_depth = 0
        return segments

    @property
    def pending_chars(self) -> int:
        return len(self._buffer)

    def hurry(self) -> None:
        self._first_pending = True

    def _reset_scan(self) -> None:
        self._pos = 0
        self._words = 0
        self._after_space = True

    def _scan(self) -> list[str]:
        segments: list[str] = []
        while self._pos < len(self._buffer):
            cut = self._cut_at(self._pos)
            if cut.verdict is _Verdict.NEED_MORE:
                break
            self._consume_through(max(cut.end, self._pos + 1))
            if cut.verdict is _Verdict.BOUNDARY:
                segments += self._emit(cut.end)
        return segments

    def _cut_at(self, pos: int) -> _Check:
        """Decide whether the segment is cut at the character at `pos`, and where."""
        char = self._buffer[pos]
        if pos >= _MAX_SEGMENT_CHARS:
            return _Check(_Verdict.BOUNDARY, pos + 1)
        if char.isspace():
            return self._word_budget_cut(pos)
        if self._in_code:
            return _NOT_BOUNDARY
        if char in _TERMINATORS:
            return self._sentence_end(pos)
        if self._bracket_depth == 0 and (char in _CLAUSE_MARKS or char in _DASHES):
            return self._clause_cut(pos)
        return _NOT_BOUNDARY

    def _consume_through(self, end: int) -> None:
        while self._pos < end:
            self._consume(self._buffer[self._pos])

    def _consume(self, char: str) -> None:
        """Move the scan past `char`, keeping the word count and span state."""
        if char.isspace():
            self._after_space = True
        else:
            if self._after_space:
                self._words += 1
            self._after_space = False
        if char == "`":
            self._in_code = not self._in_code
        elif not self._in_code and char == "[":
            self._bracket_depth += 1
        elif not self._in_code and char == "]":
            self._bracket_depth = max(0, self._bracket_depth - 1)
        self._pos += 1

    def _emit(self, end: int) -> list[str]:
        """Cut the buffer at `end`; return the spoken form of the cut-off part if it says anything."""
        raw, self._buffer = self._buffer[:end], self._buffer[end:].lstrip()
        self._reset_scan()
        spoken = speakable(raw)
        if not spoken:
            return []
        self._first_pending = False
        return [spoken]

    def _word_budget_cut(self, pos: int) -> _Check:
        if self._after_space:
            return _NOT_BOUNDARY
        budget = self._max_first_words if self._first_pending else self._hard_max_words
        return _Check(_Verdict.BOUNDARY, pos) if self._words >= budget else _NOT_BOUNDARY

    def _clause_cut(self, pos: int) -> _Check:
        check = self._clause_boundary(pos)
        if check.verdict is not _Verdict.BOUNDARY:
            return check
        needed = self._min_first_words if self._first_pending else self._max_words
        return check if self._words >= needed else _NOT_BOUNDARY

    def _clause_boundary(self, pos: int) -> _Check:
        """Is the comma, colon, semicolon or dash at `pos` a pause between clauses?"""
        buffer = self._buffer
        char = buffer[pos]
        if char in _DASHES:
            return self._dash_boundary(pos)
        end = _skip_closers(buffer, pos + 1)
        if end >= len(buffer):
            return _NEED_MORE
        return _Check(_Verdict.BOUNDARY, end) if buffer[end].isspace() else _NOT_BOUNDARY

    def _dash_boundary(self, pos: int) -> _Check:
        buffer = self._buffer
        if pos + 1 >= len(buffer):
            return _NEED_MORE
        before = buffer[pos - 1] if pos > 0 else " "
        after = buffer[pos + 1]
        spaced = before.isspace() and after.isspace()
        joins_words = buffer[pos] == "—" and before.isalpha() and after.isalpha()
        return _Check(_Verdict.BOUNDARY, pos + 1) if spaced or joins_words else _NOT_BOUNDARY

    def _sentence_end(self, pos: int) -> _Check:
        """Is the run of . ! ? … starting at `pos` the end of a sentence?"""
        buffer = self._buffer
        run_end = pos
        while run_end < min(len(buffer), pos + _LOOKAHEAD_CHARS) and buffer[run_end] in _TERMINATORS:
            run_end += 1
        end = _skip_closers(buffer, run_end)
        if end >= len(buffer):
            return _NEED_MORE
        if not buffer[end].isspace():
            return _Check(_Verdict.NOT_BOUNDARY)
        run = buffer[pos:run_end]
        if "?" in run or "!" in run:
            return _Check(_Verdict.BOUNDARY, end)
        check = self._period_end(pos, end) if run == "." else self._lowercase_continues(end)
        return _Check(_Verdict.NOT_BOUNDARY, run_end) if check.verdict is _Verdict.NOT_BOUNDARY else check

    def _period_end(self, pos: int, end: int) -> _Check:
        """Is the single "." at `pos` (whitespace at `end`) a full stop rather than an abbreviation?"""
        word = self._buffer[self._word_start(pos) : pos].lstrip(_OPENING_PUNCTUATION)
        lowered = word.lower()
        if lowered == "no":
            return self._digit_continues(end)
        if lowered in _TITLE_ABBREVIATIONS or _UPPERCASE_INITIALISM_RE.fullmatch(word):
            return _NOT_BOUNDARY
        if len(word) == 1 and word.isupper():
            return _NOT_BOUNDARY
        if word.isdigit() and self._words <= 1:
            return _NOT_BOUNDARY
        if lowered in _LOWERCASE_ABBREVIATIONS or _LOWERCASE_INITIALISM_RE.fullmatch(word):
            return self._lowercase_continues(end)
        return _Check(_Verdict.BOUNDARY, end)

    def _word_start(self, pos: int) -> int:
        start = pos
        while start > 0 and not self._buffer[start - 1].isspace():
            start -= 1
        return start

    def _lowercase_continues(self, end: int) -> _Check:
        """A boundary at `end` unless the next word starts in lowercase or a digit (the sentence goes on)."""
        following = self._next_visible(end)
        if following is None:
            return _NEED_MORE
        continues = following.islower() or following.isdigit()
        return _NOT_BOUNDARY if continues else _Check(_Verdict.BOUNDARY, end)

    def _digit_continues(self, end: int) -> _Check:
        following = self._next_visible(end)
        if following is None:
            return _NEED_MORE
        return _NOT_BOUNDARY if following.isdigit() else _Check(_Verdict.BOUNDARY, end)

    def _next_visible(self, start: int) -> str | None:
        """The first character from `start` that is neither whitespace nor markup.

        None while it has not arrived yet; a space if a long run of blanks and markup hides it.
        """
        window = self._buffer[start : start + _LOOKAHEAD_CHARS]
        for char in window:
            if not char.isspace() and char not in _OPENING_PUNCTUATION and char != "`":
                return char
        return None if len(window) < _LOOKAHEAD_CHARS else " "


def _skip_closers(text: str, start: int) -> int:
    """Index after the closing quotes, brackets and emphasis marks at `start` (at most a few)."""
    end = start
    limit = min(len(text), start + _LOOKAHEAD_CHARS)
    while end < limit and text[end] in _CLOSERS:
        end += 1
    return end


class _LineKind(enum.Enum):
    START = enum.auto()
    PROSE = enum.auto()
    TABLE_ROW = enum.auto()
    SKIP = enum.auto()


class SpeechSegmenter:
    """Turn one streamed reply into speakable segments; see the module docstring for the rules.

    `feed()` the reply text as it arrives, `flush()` at its end; `flush()` also resets the segmenter
    so the same object serves the next reply.
    """

    def __init__(self, min_first_words: int = 4, max_first_words: int = 10, max_words: int = 40) -> None:
        if not 1 <= min_first_words <= max_first_words <= max_words:
            raise ValueError("need 1 <= min_first_words <= max_first_words <= max_words")
        self._settings = (min_first_words, max_first_words, max_words)
        self.reset()

    def feed(self, delta: str) -> list[str]:
        """Take the next chunk of the reply; return the segments it completes, in order."""
        segments: list[str] = []
        text = delta.replace("\r", "")
        index = 0
        while index < len(text):
            if self._kind is _LineKind.START:
                index = self._read_prefix(text, index, segments)
            else:
                index = self._read_body(text, index, segments)
        return segments

    def flush(self) -> list[str]:
        """End the reply: return what remains as segments and get ready for a new reply."""
        segments = self._end_line()
        self.reset()
        return segments

    def reset(self) -> None:
        """Drop whatever is held back (a cancelled reply) and get ready for a new reply."""
        self._sentences = _SentenceSplitter(*self._settings)
        self._kind = _LineKind.START
        self._line = ""
        self._fence: str | None = None

    def hurry(self) -> None:
        """Cut the next segment like the first one (early clause or short word budget).

        The caller uses it when speech is about to run dry: a short segment now beats a
        whole sentence later.
        """
        self._sentences.hurry()

    @property
    def pending_chars(self) -> int:
        """How many characters are held back, waiting for the rest of their line or sentence."""
        return len(self._line) + self._sentences.pending_chars

    def _read_prefix(self, text: str, index: int, segments: list[str]) -> int:
        """Collect the start of a line until its kind is known; return where reading stopped."""
        while index < len(text):
            char = text[index]
            index += 1
            if char == "\n":
                segments += self._end_line()
                return index
            self._line += char
            if char not in _MARKER_ALPHABET or len(self._line) > _MAX_PREFIX_CHARS:
                segments += self._classify_line()
                return index
        return index

    def _read_body(self, text: str, index: int, segments: list[str]) -> int:
        """Handle the rest of a line whose kind is known; return where reading stopped."""
        newline = text.find("\n", index)
        stop = len(text) if newline < 0 else newline
        if self._kind is _LineKind.PROSE:
            segments += self._sentences.add(text[index:stop])
        elif self._kind is _LineKind.TABLE_ROW:
            self._line += text[index:stop]
            if len(self._line) > _MAX_TABLE_ROW_CHARS:
                self._kind = _LineKind.PROSE
                segments += self._sentences.add(self._line)
                self._line = ""
        if newline < 0:
            return len(text)
        segments += self._end_line()
        return newline + 1

    def _classify_line(self) -> list[str]:
        """The line so far shows what it is: choose how to read the rest of it."""
        line, self._line = self._line, ""
        if self._fence is not None:
            self._kind = _LineKind.SKIP
            return []
        fence = _FENCE_OPEN_RE.match(line)
        if fence:
            self._fence = fence.group(1)
            self._kind = _LineKind.SKIP
            return []
        if _TABLE_ROW_START_RE.match(line):
            self._kind = _LineKind.TABLE_ROW
            self._line = line
            return []
        self._kind = _LineKind.PROSE
        return self._sentences.add(strip_line_markers(line))

    def _end_line(self) -> list[str]:
        """The current line is complete (newline or end of reply): finish it."""
        segments: list[str] = []
        if self._kind is _LineKind.START:
            segments += self._finish_short_line(self._line)
        elif self._kind is _LineKind.TABLE_ROW:
            segments += self._sentences.add(_table_row_text(self._line))
        segments += self._sentences.end_line()
        self._kind = _LineKind.START
        self._line = ""
        return segments

    def _finish_short_line(self, line: str) -> list[str]:
        """A line made only of marker characters: a fence, a rule, a table row, or short prose."""
        if self._fence is not None:
            closing = _FENCE_CLOSE_RE.match(line)
            if closing and _closes(self._fence, closing.group(1)):
                self._fence = None
            return []
        fence = _FENCE_OPEN_RE.match(line)
        if fence:
            self._fence = fence.group(1)
            return []
        if _TABLE_ROW_START_RE.match(line):
            return self._sentences.add(_table_row_text(line))
        if not line.strip() or _RULE_LINE_RE.match(line):
            return []
        return self._sentences.add(strip_line_markers(line))


def _closes(opening: str, candidate: str) -> bool:
    return candidate[0] == opening[0] and len(candidate) >= len(opening)


def _table_row_text(row: str) -> str:
    """A table row as prose: its cells joined by commas; a separator row says nothing."""
    cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
    if all(_TABLE_SEPARATOR_CELL_RE.match(cell) or not cell for cell in cells):
        return ""
    return ", ".join(cell for cell in cells if cell)
