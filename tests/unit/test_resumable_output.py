"""What a resumed client is sent (issue 6): the missing end of the reply once, then the turn's end."""

from __future__ import annotations

import asyncio

from backend import protocol as p
from backend.resume import CATCH_UP_CHARS, LOST_QUESTION, ResumableOutput

INFO = p.SessionInfo(session_id="s", resumed=True)


class Recorder:
    def __init__(self) -> None:
        self.messages: list[p.Message] = []
        self.frames: list[p.AudioFrame] = []

    async def send(self, message: p.Message) -> None:
        self.messages.append(message)

    async def send_audio(self, frame: p.AudioFrame) -> None:
        self.frames.append(frame)


def point(turn_id: int | None, received: int) -> p.ResumeHello:
    return p.ResumeHello(version="1.0", token="t", session_id="s", turn_id=turn_id, received_chars=received)


async def detached_turn(out: ResumableOutput, pieces: list[str], *, done: bool) -> None:
    await out.send(p.TurnStarted(turn_id=3, text="q"))
    for piece in pieces:
        await out.send(p.TextDelta(turn_id=3, text=piece))
        await out.send_audio(p.AudioFrame(turn_id=3, seq=0, pcm=b"\0\0"))
    if done:
        await out.send(p.Error(code=p.ERR_PROVIDER, message="speech failed", turn_id=3))
        await out.send(p.TurnDone(turn_id=3, status="completed", text="".join(pieces)))


def test_a_turn_that_ended_while_detached_is_caught_up_in_full_without_audio() -> None:
    async def scenario() -> Recorder:
        out, target = ResumableOutput(), Recorder()
        await detached_turn(out, ["Hello ", "there, ", "friend."], done=True)
        await out.attach(target, INFO, point(3, len("Hello th")), asked=3)
        await out.send(p.Status(state="ready"))
        return target

    target = asyncio.run(scenario())
    assert target.messages == [
        INFO,
        p.TextDelta(turn_id=3, text="ere, friend."),
        p.Error(code=p.ERR_PROVIDER, message="speech failed", turn_id=3),
        p.TurnDone(turn_id=3, status="completed", text="Hello there, friend."),
        p.Status(state="ready"),
    ]
    assert target.frames == []


def test_a_running_turn_gets_the_missing_text_then_goes_on_live() -> None:
    async def scenario() -> Recorder:
        out, target = ResumableOutput(), Recorder()
        await detached_turn(out, ["a" * CATCH_UP_CHARS, "b" * 10], done=False)
        await out.attach(target, INFO, point(3, 0), asked=3)
        await out.send(p.TextDelta(turn_id=3, text="live"))
        await out.send_audio(p.AudioFrame(turn_id=3, seq=9, pcm=b"\0\0"))
        return target

    target = asyncio.run(scenario())
    texts = [m.text for m in target.messages if isinstance(m, p.TextDelta)]
    assert texts == ["a" * CATCH_UP_CHARS, "b" * 10, "live"]  # in pieces a frame can hold
    assert len(target.frames) == 1


def test_a_turn_the_server_never_saw_is_reported_lost_and_nothing_is_resent_without_a_turn() -> None:
    async def scenario() -> tuple[Recorder, Recorder]:
        out = ResumableOutput()
        await detached_turn(out, ["Hi."], done=True)
        lost, idle = Recorder(), Recorder()
        await out.attach(lost, INFO, point(4, 0), asked=3)
        out.detach()
        await out.attach(idle, INFO, point(None, 0), asked=3)
        return lost, idle

    lost, idle = asyncio.run(scenario())
    assert lost.messages[1:] == [
        p.Error(code=p.ERR_STATE, message=LOST_QUESTION, turn_id=4),
        p.TurnDone(turn_id=4, status="error", error=LOST_QUESTION),
    ]
    assert idle.messages == [INFO]
