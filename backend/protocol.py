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
    stt_s: float = 0.0  # spoken questions: the final transcription, before the turn (the app fills it in)

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
    stt: str = ""  # "" when ready: no speech recognition (``detail`` says why)


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
    stt_s: float = 0.0  # final only: how long recognizing the utterance took


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
    return _check_record_field(where, ann, value)  # see the conversations section


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


# ---- conversations and settings (issue 4: stored conversations, live settings) ------------
#
# Every Ask belongs to the session's current conversation (created at the first Ask when
# there is none). Lists and messages that could outgrow one frame are sent in batches.

MessageRole: TypeAlias = Literal["user", "assistant"]
MessageStatus: TypeAlias = Literal["completed", "streaming", "cancelled", "interrupted", "error", "incomplete"]
"""``streaming``: a reply being written; ``incomplete``: one cut by a backend crash."""
Timestamp: TypeAlias = float
"""Seconds since the Unix epoch."""

ERR_STORE: Final = "store"
ERR_NOT_FOUND: Final = "not_found"
ERR_CONFIG: Final = "config"


@dataclass(frozen=True)
class Record(Message):
    """A value nested inside a message (validated like one); never a frame of its own."""


@dataclass(frozen=True)
class ConversationInfo(Record):
    TYPE: ClassVar[str] = "conversation_info"
    conversation_id: int
    title: str
    created_at: Timestamp
    updated_at: Timestamp
    message_count: int = 0


@dataclass(frozen=True)
class StoredMessage(Record):
    """One stored message; ``timings`` are a reply's (zeros for a question)."""

    TYPE: ClassVar[str] = "stored_message"
    message_id: int
    role: MessageRole
    text: str
    created_at: Timestamp
    status: MessageStatus = "completed"
    timings: Timings = field(default_factory=Timings)


@dataclass(frozen=True)
class SearchHit(Record):
    TYPE: ClassVar[str] = "search_hit"
    conversation_id: int
    message_id: int
    title: str
    role: MessageRole
    snippet: str


@dataclass(frozen=True)
class EngineSettings(Record):
    """One engine's provider settings; ``provider`` is embedded, openai or off (TTS only)."""

    TYPE: ClassVar[str] = "engine_settings"
    provider: str
    model: str = ""
    base_url: str = ""
    api_key: str = ""
    voice: str = ""
    speed: float = 1.0

    def __repr__(self) -> str:  # never show the key in logs
        key = "<hidden>" if self.api_key else "''"
        return (
            f"EngineSettings(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key={key}, voice={self.voice!r}, speed={self.speed!r})"
        )


@dataclass(frozen=True)
class ListConversations(Message):
    TYPE: ClassVar[str] = "list_conversations"


@dataclass(frozen=True)
class NewConversation(Message):
    """Leaves the current conversation; the next Ask starts a new one."""

    TYPE: ClassVar[str] = "new_conversation"


@dataclass(frozen=True)
class OpenConversation(Message):
    """Makes a stored conversation current; the LLM context is rebuilt from it."""

    TYPE: ClassVar[str] = "open_conversation"
    conversation_id: int


@dataclass(frozen=True)
class RenameConversation(Message):
    TYPE: ClassVar[str] = "rename_conversation"
    conversation_id: int
    title: str


@dataclass(frozen=True)
class DeleteConversation(Message):
    """Moves a conversation to the bin; ``RestoreConversation`` undoes it until the backend restarts."""

    TYPE: ClassVar[str] = "delete_conversation"
    conversation_id: int


@dataclass(frozen=True)
class RestoreConversation(Message):
    TYPE: ClassVar[str] = "restore_conversation"
    conversation_id: int


@dataclass(frozen=True)
class SearchConversations(Message):
    TYPE: ClassVar[str] = "search_conversations"
    query: str
    limit: int = 50


@dataclass(frozen=True)
class ExportConversation(Message):
    TYPE: ClassVar[str] = "export_conversation"
    conversation_id: int


@dataclass(frozen=True)
class Regenerate(Message):
    """Answers the last question of the current conversation again, replacing its reply."""

    TYPE: ClassVar[str] = "regenerate"
    turn_id: int
    speak: bool = True
    pipeline: PipelineMode = "streaming"


@dataclass(frozen=True)
class Configure(Message):
    """The app's engine settings; the backend swaps the engines that changed between turns."""

    TYPE: ClassVar[str] = "configure"
    llm: EngineSettings
    tts: EngineSettings
    stt: EngineSettings
    system_prompt: str = ""


@dataclass(frozen=True)
class ConversationList(Message):
    """The newest conversations (at most a few hundred: ``total`` counts them all)."""

    TYPE: ClassVar[str] = "conversation_list"
    conversations: tuple[ConversationInfo, ...] = ()
    current_id: int | None = None
    total: int = 0


@dataclass(frozen=True)
class ConversationOpened(Message):
    """The session's current conversation changed (None: a new, empty one).

    For a stored conversation, ``ConversationMessages`` batches follow, the last marked ``last``.
    """

    TYPE: ClassVar[str] = "conversation_opened"
    conversation_id: int | None
    title: str = ""
    message_count: int = 0


@dataclass(frozen=True)
class ConversationMessages(Message):
    TYPE: ClassVar[str] = "conversation_messages"
    conversation_id: int
    messages: tuple[StoredMessage, ...] = ()
    last: bool = True


@dataclass(frozen=True)
class SearchResults(Message):
    TYPE: ClassVar[str] = "search_results"
    query: str
    hits: tuple[SearchHit, ...] = ()


@dataclass(frozen=True)
class ConversationExport(Message):
    """A conversation as Markdown, in pieces; join ``markdown`` up to the one marked ``last``."""

    TYPE: ClassVar[str] = "conversation_export"
    conversation_id: int
    title: str
    markdown: str
    last: bool = True


@dataclass(frozen=True)
class Notice(Message):
    """Something the person should know that is not an error of a request (e.g. a damaged store)."""

    TYPE: ClassVar[str] = "notice"
    code: str
    message: str


CONVERSATION_MESSAGES: Final[tuple[type[Message], ...]] = (
    ListConversations,
    NewConversation,
    OpenConversation,
    RenameConversation,
    DeleteConversation,
    RestoreConversation,
    SearchConversations,
    ExportConversation,
    Regenerate,
    Configure,
    ConversationList,
    ConversationOpened,
    ConversationMessages,
    SearchResults,
    ConversationExport,
    Notice,
)
SERVER_SESSION_MESSAGES: Final[tuple[type[Message], ...]] = (
    ConversationList,
    ConversationOpened,
    ConversationMessages,
    SearchResults,
    ConversationExport,
    Notice,
)
"""What the server sends outside of turns (besides Welcome, Status and Error)."""
MESSAGE_TYPES.update({cls.TYPE: cls for cls in CONVERSATION_MESSAGES})
_LITERALS.update({"MessageRole": get_args(MessageRole), "MessageStatus": get_args(MessageStatus)})
_RECORDS: Final[dict[str, type[Message]]] = {
    cls.__name__: cls for cls in (ConversationInfo, StoredMessage, SearchHit, EngineSettings)
}


def _check_record_field(where: str, ann: str, value: Any) -> Any:
    """Validates the field kinds of this section: optional ids, timestamps, records and tuples of records."""
    if ann == "Timestamp":
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1e11:
            raise ProtocolError(ERR_MALFORMED, f"{where} must be a time in seconds since 1970")
        return float(value)
    if ann == "int | None":
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31:
            raise ProtocolError(ERR_MALFORMED, f"{where} must be a non-negative integer or null")
        return value
    record = _RECORDS.get(ann)
    if record is not None:
        if not isinstance(value, dict):
            raise ProtocolError(ERR_MALFORMED, f"{where} must be an object")
        return record.from_dict(value)
    if ann.startswith("tuple[") and ann.endswith(", ...]"):
        item = _RECORDS.get(ann[len("tuple[") : -len(", ...]")])
        if item is not None:
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ProtocolError(ERR_MALFORMED, f"{where} must be a list of objects")
            return tuple(item.from_dict(v) for v in value)
    raise ProtocolError(ERR_INTERNAL, f"{where}: no validator for {ann}")  # pragma: no cover


# ---- voice input (issue 3: spoken questions, barge-in) --------------------------------------
#
# A spoken question is a turn that starts with ``UtteranceStart`` instead of ``Ask``. The client
# then streams the microphone as binary ``AudioFrame``s of that turn (16 kHz mono int16, a few
# tens of ms each) and closes the utterance with ``UtteranceEnd``. While the audio arrives the
# server sends partial ``Transcript``s; at the end one final ``Transcript``, then the usual
# ``TurnStarted`` ... ``TurnDone``. When no words were recognized, the final transcript is empty
# and ``TurnDone(status="cancelled", error=NO_SPEECH_MESSAGE)`` follows at once.
#
# ``UtterancePause`` says the person went quiet (the client's end-of-speech silence is running):
# the server may transcribe and start writing the reply already, showing nothing until
# ``UtteranceEnd``; ``UtteranceResume`` (speech went on) drops that work. An utterance is at most
# ``MAX_UTTERANCE_S`` long: audio beyond it is refused with an ``Error`` (code ``too_large``) and
# the first ``MAX_UTTERANCE_S`` are transcribed at the end.

VOICE_SAMPLE_RATE: Final = 16000
MAX_UTTERANCE_S: Final = 30.0
NO_SPEECH_MESSAGE: Final = "No words were recognized."
CAPABILITY_VOICE: Final = "voice"


@dataclass(frozen=True)
class UtteranceStart(Message):
    """Starts a voice turn (a running turn is stopped first); audio frames of ``turn_id`` follow."""

    TYPE: ClassVar[str] = "utterance_start"
    turn_id: int
    sample_rate: int = VOICE_SAMPLE_RATE
    speak: bool = True
    pipeline: PipelineMode = "streaming"


@dataclass(frozen=True)
class UtterancePause(Message):
    """The person went quiet; the utterance may be about to end."""

    TYPE: ClassVar[str] = "utterance_pause"
    turn_id: int


@dataclass(frozen=True)
class UtteranceResume(Message):
    """The person spoke again after a pause."""

    TYPE: ClassVar[str] = "utterance_resume"
    turn_id: int


@dataclass(frozen=True)
class UtteranceEnd(Message):
    """The utterance is complete: transcribe it and answer."""

    TYPE: ClassVar[str] = "utterance_end"
    turn_id: int


VOICE_MESSAGES: Final[tuple[type[Message], ...]] = (UtteranceStart, UtterancePause, UtteranceResume, UtteranceEnd)
MESSAGE_TYPES.update({cls.TYPE: cls for cls in VOICE_MESSAGES})


# ---- resume and limits (issue 6: the backend as a server, links that drop) -------------------
#
# A server that can resume sessions lists ``CAPABILITY_RESUME`` in ``Welcome.capabilities``. A
# client that can lists it in ``Hello.capabilities``; the server then sends ``SessionInfo`` right
# after ``Welcome``: the session's id, and whether it was taken back. When the link of such a
# client drops (the connection ends without a close frame from the client), the server keeps
# the session for a grace period (60 s by default): its turn runs on and is stored as usual;
# what it sends meanwhile is dropped, except the turn's ``Error``s and ``TurnDone``, which are kept.
#
# A client that reconnects opens with ``ResumeHello`` instead of ``Hello``, naming the session,
# the turn it was receiving (or None) and how many characters of that reply it had. The server
# answers ``Welcome``, ``SessionInfo(resumed=True)``, then the missing end of the reply as
# ``TextDelta``s and, if the turn ended meanwhile, its kept ``Error``s and ``TurnDone``; the rest
# of a running turn follows live (a question that never reached the server ends in an ``Error``
# and ``TurnDone(status="error")``). No text is sent twice or lost; audio sent while the link was
# down is not replayed (the client hears the reply from where the link came back). A running turn
# that the client no longer waits for (``turn_id`` None or another) is cancelled. An unknown or
# expired session gives ``SessionInfo(resumed=False)`` and a fresh session: the client then says
# that the reply was lost. Turn ids keep increasing across the connections of one session.
#
# Every connection is rate limited: a message over the limit is dropped and answered with
# ``Error(code=ERR_RATE_LIMITED)`` (once per burst); a sustained flood closes the connection
# with ``CLOSE_POLICY`` (1008).

ERR_RATE_LIMITED: Final = "rate_limited"
CAPABILITY_RESUME: Final = "resume"
CLOSE_POLICY: Final = 1008


@dataclass(frozen=True)
class ResumeHello(Hello):
    """A ``Hello`` that takes back a session whose link dropped."""

    TYPE: ClassVar[str] = "resume_hello"
    session_id: str = ""
    turn_id: int | None = None
    received_chars: int = 0

    def __repr__(self) -> str:  # never show the token (or the session id) in logs
        shown = f"version={self.version!r}, client={self.client!r}, turn_id={self.turn_id!r}"
        return f"ResumeHello({shown}, token=<hidden>)"


@dataclass(frozen=True)
class SessionInfo(Message):
    """Follows ``Welcome`` on servers that resume sessions."""

    TYPE: ClassVar[str] = "session"
    session_id: str
    resumed: bool = False
    detail: str = ""

    def __repr__(self) -> str:
        return f"SessionInfo(resumed={self.resumed!r}, detail={self.detail!r}, session_id=<hidden>)"


RESUME_MESSAGES: Final[tuple[type[Message], ...]] = (ResumeHello, SessionInfo)
MESSAGE_TYPES.update({cls.TYPE: cls for cls in RESUME_MESSAGES})
