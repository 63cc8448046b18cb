"""The wire protocol shared by the Parley app and backend.

Control and text travel as JSON text frames, one message per frame, each with a
``type`` tag. Audio travels as binary frames: a fixed 12-byte header (magic,
header version, turn id, sequence number) followed by raw PCM. The PCM format of
a stream is announced once by ``AudioStart``.

Decoding never raises: malformed, unknown or oversized input becomes an
``Error`` message that the receiver can send back, and the connection goes on.
"""

from __future__ import annotations

import json
import struct
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, Final, Literal, TypeAlias, get_args

PROTOCOL_VERSION: Final = "1.0"
MAX_TEXT_FRAME_BYTES: Final = 64 * 1024
MAX_BINARY_FRAME_BYTES: Final = 256 * 1024
MAX_TURN_ID: Final = 2**32 - 1

AUDIO_MAGIC: Final = b"PA"
AUDIO_HEADER_VERSION: Final = 1
_AUDIO_HEADER = struct.Struct("!2sBxII")
AUDIO_HEADER_BYTES: Final = _AUDIO_HEADER.size

TurnStatus: TypeAlias = Literal["completed", "cancelled", "interrupted", "error"]
ServerState: TypeAlias = Literal["loading", "ready", "error"]
PipelineMode: TypeAlias = Literal["streaming", "sequential"]
SampleType: TypeAlias = Literal["int16"]

# Error codes: stable strings the app maps to messages and actions.
ERR_MALFORMED: Final = "malformed"
ERR_UNKNOWN_TYPE: Final = "unknown_type"
ERR_TOO_LARGE: Final = "too_large"
ERR_AUTH: Final = "auth"
ERR_VERSION: Final = "version"
ERR_STATE: Final = "state"
ERR_BUSY: Final = "busy"
ERR_PROVIDER: Final = "provider"
ERR_INTERNAL: Final = "internal"


class ProtocolError(ValueError):
    """A frame that cannot be turned into a message; carries an error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Message:
    """Base of all JSON messages; subclasses set ``TYPE`` and are frozen."""

    TYPE: ClassVar[str] = ""

    def to_wire(self) -> str:
        payload = asdict(self)
        payload["type"] = self.TYPE
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data:
                kwargs[f.name] = _check_field(cls, f.name, f.type, data[f.name])
            elif f.default is not MISSING or f.default_factory is not MISSING:
                continue
            else:
                raise ProtocolError(ERR_MALFORMED, f"{cls.TYPE}: missing field {f.name!r}")
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ProtocolError(ERR_MALFORMED, f"{cls.TYPE}: {exc}") from None


# ---- timings -------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    """Where a turn's time went, in seconds from the moment the turn started."""

    ttft_s: float | None = None
    ttfa_s: float | None = None
    total_s: float = 0.0
    tokens: int = 0
    llm_s: float = 0.0
    audio_s: float = 0.0
    synth_s: float = 0.0

    @classmethod
    def from_value(cls, value: Any) -> Timings:
        if not isinstance(value, dict):
            raise ProtocolError(ERR_MALFORMED, "timings must be an object")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in value:
                continue
            v = value[f.name]
            if v is None and f.name in ("ttft_s", "ttfa_s"):
                kwargs[f.name] = None
            elif f.name == "tokens" and isinstance(v, int) and not isinstance(v, bool):
                kwargs[f.name] = v
            elif f.name != "tokens" and isinstance(v, int | float) and not isinstance(v, bool):
                kwargs[f.name] = float(v)
            else:
                raise ProtocolError(ERR_MALFORMED, f"timings.{f.name} has the wrong type")
        return cls(**kwargs)


# ---- client -> server ------------------------------------------------------------


@dataclass(frozen=True)
class Hello(Message):
    """Opens every connection; the server checks version and token."""

    TYPE: ClassVar[str] = "hello"
    version: str
    token: str
    client: str = ""
    capabilities: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never show the token in logs
        return f"Hello(version={self.version!r}, client={self.client!r}, token=<hidden>)"


@dataclass(frozen=True)
class Ask(Message):
    """Starts a turn with a typed question. Turn ids are chosen by the client and increase."""

    TYPE: ClassVar[str] = "ask"
    turn_id: int
    text: str
    speak: bool = True
    pipeline: PipelineMode = "streaming"


@dataclass(frozen=True)
class Cancel(Message):
    """Stops a turn now; the backend keeps what was produced so far."""

    TYPE: ClassVar[str] = "cancel"
    turn_id: int


@dataclass(frozen=True)
class Interrupt(Message):
    """Stops a turn because the person barged in; ``heard_s`` of audio reached their ears."""

    TYPE: ClassVar[str] = "interrupt"
    turn_id: int
    heard_s: float


@dataclass(frozen=True)
class ResetConversation(Message):
    """Forgets the conversation history of this session."""

    TYPE: ClassVar[str] = "reset"


# ---- server -> client ------------------------------------------------------------


@dataclass(frozen=True)
class Welcome(Message):
    """The server's answer to a good ``Hello``."""

    TYPE: ClassVar[str] = "welcome"
    version: str
    server: str
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Status(Message):
    """The backend's readiness: models loading (with progress 0..1), ready, or failed."""

    TYPE: ClassVar[str] = "status"
    state: ServerState
    detail: str = ""
    progress: float | None = None
    llm: str = ""
    tts: str = ""


@dataclass(frozen=True)
class TurnStarted(Message):
    TYPE: ClassVar[str] = "turn_started"
    turn_id: int
    text: str


@dataclass(frozen=True)
class Transcript(Message):
    """What the person said: partial while they speak, then final."""

    TYPE: ClassVar[str] = "transcript"
    turn_id: int
    text: str
    final: bool = True


@dataclass(frozen=True)
class TextDelta(Message):
    TYPE: ClassVar[str] = "text_delta"
    turn_id: int
    text: str


@dataclass(frozen=True)
class AudioStart(Message):
    """Announces the PCM format of the binary audio frames of a turn."""

    TYPE: ClassVar[str] = "audio_start"
    turn_id: int
    sample_rate: int
    channels: int = 1
    sample_type: SampleType = "int16"


@dataclass(frozen=True)
class AudioEnd(Message):
    TYPE: ClassVar[str] = "audio_end"
    turn_id: int
    frames: int = 0


@dataclass(frozen=True)
class TurnDone(Message):
    """Closes a turn. ``text`` is the reply as committed to the conversation."""

    TYPE: ClassVar[str] = "turn_done"
    turn_id: int
    status: TurnStatus
    text: str = ""
    timings: Timings = field(default_factory=Timings)
    error: str = ""


@dataclass(frozen=True)
class Error(Message):
    """Something went wrong; the connection stays open unless the code says otherwise."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    turn_id: int | None = None


MESSAGE_TYPES: Final[dict[str, type[Message]]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Ask,
        Cancel,
        Interrupt,
        ResetConversation,
        Welcome,
        Status,
        TurnStarted,
        Transcript,
        TextDelta,
        AudioStart,
        AudioEnd,
        TurnDone,
        Error,
    )
}


def _check_field(cls: type[Message], name: str, annotation: Any, value: Any) -> Any:
    """Validates one decoded JSON value against the field's annotation (as a string)."""
    where = f"{cls.TYPE}.{name}"
    ann = str(annotation)
    if name == "turn_id":
        if ann.startswith("int | None") and value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TURN_ID:
            raise ProtocolError(ERR_MALFORMED, f"{where} must be an integer in 0..{MAX_TURN_ID}")
        return value
    if name == "timings":
        return Timings.from_value(value)
    if ann == "str":
        if not isinstance(value, str):
            raise ProtocolError(ERR_MALFORMED, f"{where} must be a string")
        return value
    if ann == "bool":
        if not isinstance(value, bool):
            raise ProtocolError(ERR_MALFORMED, f"{where} must be true or false")
        return value
    if ann == "int":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31:
            raise ProtocolError(ERR_MALFORMED, f"{where} must be a non-negative integer")
        return value
    if ann in ("float", "float | None"):
        if value is None and ann.endswith("None"):
            return None
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            raise ProtocolError(ERR_MALFORMED, f"{where} must be a number")
        if not -1e9 < float(value) < 1e9:
            raise ProtocolError(ERR_MALFORMED, f"{where} is out of range")
        return float(value)
    if ann == "tuple[str, ...]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProtocolError(ERR_MALFORMED, f"{where} must be a list of strings")
        return tuple(value)
    literal = _LITERALS.get(ann)
    if literal is not None:
        if value not in literal:
            raise ProtocolError(ERR_MALFORMED, f"{where} must be one of {', '.join(literal)}")
        return value
    raise ProtocolError(ERR_INTERNAL, f"{where}: no validator for {ann}")  # pragma: no cover


_LITERALS: Final[dict[str, tuple[str, ...]]] = {
    "TurnStatus": get_args(TurnStatus),
    "ServerState": get_args(ServerState),
    "PipelineMode": get_args(PipelineMode),
    "SampleType": get_args(SampleType),
}


def decode(raw: str | bytes) -> Message:
    """Turns one JSON text frame into a message; raises ``ProtocolError`` when it cannot."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_TEXT_FRAME_BYTES:
        raise ProtocolError(ERR_TOO_LARGE, f"text frame of {size} bytes exceeds {MAX_TEXT_FRAME_BYTES}")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError(ERR_MALFORMED, "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(ERR_MALFORMED, "frame must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ERR_MALFORMED, "frame has no string 'type'")
    cls = MESSAGE_TYPES.get(kind)
    if cls is None:
        raise ProtocolError(ERR_UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}")
    return cls.from_dict(data)


def decode_or_error(raw: str | bytes) -> Message:
    """Like ``decode`` but returns an ``Error`` message instead of raising."""
    try:
        return decode(raw)
    except ProtocolError as exc:
        return Error(code=exc.code, message=str(exc))


# ---- binary audio frames -------------------------------------------------------


@dataclass(frozen=True)
class AudioFrame:
    """A binary frame of raw PCM belonging to one turn."""

    turn_id: int
    seq: int
    pcm: bytes

    def to_wire(self) -> bytes:
        return _AUDIO_HEADER.pack(AUDIO_MAGIC, AUDIO_HEADER_VERSION, self.turn_id, self.seq) + self.pcm

    @classmethod
    def from_wire(cls, raw: bytes) -> AudioFrame:
        """Parses a binary frame; raises ``ProtocolError`` on a bad header or size."""
        if len(raw) > MAX_BINARY_FRAME_BYTES:
            raise ProtocolError(
                ERR_TOO_LARGE, f"binary frame of {len(raw)} bytes exceeds {MAX_BINARY_FRAME_BYTES}"
            )
        if len(raw) < AUDIO_HEADER_BYTES:
            raise ProtocolError(ERR_MALFORMED, "binary frame shorter than its header")
        magic, version, turn_id, seq = _AUDIO_HEADER.unpack_from(raw)
        if magic != AUDIO_MAGIC or version != AUDIO_HEADER_VERSION:
            raise ProtocolError(ERR_MALFORMED, "binary frame has an unknown header")
        pcm = bytes(raw[AUDIO_HEADER_BYTES:])
        if len(pcm) % 2:
            raise ProtocolError(ERR_MALFORMED, "int16 PCM payload has an odd length")
        return cls(turn_id=turn_id, seq=seq, pcm=pcm)


def major(version: str) -> int | None:
    """The major number of a ``MAJOR.MINOR`` version string, or None if it is not one."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None
