"""LiveMarkdown: what settles, and that the live tail stays short."""

from __future__ import annotations

from assistant.ui.markdown_stream import LiveMarkdown


def feed(stream: LiveMarkdown, text: str, step: int) -> tuple[list[str], str]:
    settled: list[str] = []
    live = ""
    for i in range(0, len(text), step):
        update = stream.append(text[i : i + step])
        if update.settled:
            settled.append(update.settled)
        live = update.live
    return settled, live


def test_paragraphs_settle_at_blank_lines() -> None:
    stream = LiveMarkdown()
    settled, live = feed(stream, "First **one**.\n\nSecond one.\n\nThird", 3)
    assert settled == ["First **one**.\n\n", "Second one.\n\n"]
    assert live == "Third"
    assert stream.text == "First **one**.\n\nSecond one.\n\nThird"


def test_blank_lines_inside_code_do_not_settle() -> None:
    stream = LiveMarkdown()
    settled, live = feed(stream, "```python\nx = 1\n\ny = 2\n```\n\nafter", 2)
    assert settled == ["```python\nx = 1\n\ny = 2\n```\n\n"]
    assert live == "after"


def test_a_long_paragraph_keeps_the_live_tail_bounded() -> None:
    stream = LiveMarkdown(limit=100)
    longest = 0
    for _ in range(2000):
        longest = max(longest, len(stream.append("word ").live))
    assert longest <= 100 + len("word ")
    assert stream.text == "word " * 2000


def test_a_long_code_block_cut_in_pieces_renders_each_piece_as_code() -> None:
    stream = LiveMarkdown(limit=30)
    body = "".join(f"line {i}\n" for i in range(20))
    settled, live = feed(stream, "```sh\n" + body + "```\nend", 1)
    assert len(settled) > 2
    for piece in settled:
        assert piece.startswith("```sh\n") and piece.rstrip().endswith("```")
    assert live == "end"
