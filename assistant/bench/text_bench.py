"""``parley-bench text``: time to first token and first audio through the real app path.

For each model it starts the real embedded backend (a child process, as the app
does), connects the app's ``BackendConnection`` and plays every reply through the
app's ``AudioPlayer`` on the default output device. Each question is asked twice:
streaming (speech starts after the first clause) and sequential (the whole reply
first, then synthesis), and the ratio of their times to first audio is reported.

Decoding is greedy (temperature 0) so that both runs of a question write the same
reply and their times compare like with like; the ratio counts replies that reach
60 words in both. After the sequential run is cancelled at its first sound, the
benchmark pauses (``SETTLE_S``) so that the next question does not share the cores
with the last sentence the cancelled run was still synthesizing: a person does not
ask again within milliseconds of stopping a reply.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

from assistant.audio.player import AudioPlayer
from assistant.backend_supervisor import BackendSupervisor
from assistant.bench.questions import WARM_UP
from assistant.bench.stats import ms, summary
from assistant.headless_turn import HeadlessClient, TurnRecord
from assistant.net.backend_connection import BackendConnection

log = logging.getLogger("parley.bench")

LONG_REPLY_WORDS = 60
SETTLE_S = 1.0


@dataclass
class ModelRun:
    model: str
    llm: str = ""
    streaming: list[TurnRecord] = field(default_factory=list)
    sequential: list[TurnRecord] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        ok = [r for r in self.streaming if r.ttfa_s is not None and r.ttft_s is not None]
        base = [r for r in self.sequential if r.ttfa_s is not None]
        tok_s = [r.timings.tokens / r.timings.llm_s for r in ok if r.timings.llm_s > 0 and r.timings.tokens > 1]
        rtf = [r.timings.synth_s / r.timings.audio_s for r in ok if r.timings.audio_s > 0]
        ratios = []
        for s, b in zip(self.streaming, self.sequential, strict=True):
            if s.ttfa_s and b.ttfa_s and min(s.words, b.words) >= LONG_REPLY_WORDS:
                ratios.append(b.ttfa_s / s.ttfa_s)
        return {
            "llm": self.llm,
            "questions": len(self.streaming),
            "ttft_s": summary([r.ttft_s for r in ok if r.ttft_s is not None]),
            "ttfa_s": summary([r.ttfa_s for r in ok if r.ttfa_s is not None]),
            "baseline_ttfa_s": summary([r.ttfa_s for r in base if r.ttfa_s is not None]),
            # where the time goes: the backend's own view (first token, first frame sent)
            "backend_ttft_s": summary([r.timings.ttft_s for r in ok if r.timings.ttft_s is not None]),
            "backend_ttfa_s": summary([r.timings.ttfa_s for r in ok if r.timings.ttfa_s is not None]),
            "baseline_ratio_long_replies": summary(ratios),
            "long_replies": len(ratios),
            "reply_words": summary([float(r.words) for r in self.streaming]),
            "tokens_per_s": round(statistics.median(tok_s), 2) if tok_s else None,
            "tts_rtf": round(statistics.median(rtf), 4) if rtf else None,
            "underruns": sum(r.underruns for r in self.streaming),
            "failed": [r.question for r in self.streaming if r.status != "completed"],
        }


async def bench_model(model: str, questions: tuple[str, ...], device: str, ready_timeout_s: float) -> ModelRun:
    """Runs every question on one model (streaming, then the sequential baseline)."""
    run = ModelRun(model=model)
    player = AudioPlayer(device=device or None)
    player.open(22050)
    supervisor = BackendSupervisor(extra_args=["--llm-model", model, "--llm-temperature", "0"])
    client = HeadlessClient(player)
    connection: BackendConnection | None = None
    try:
        url = await supervisor.start()
        connection = BackendConnection(url, supervisor.token, client)
        client.connection = connection
        await connection.connect()
        status = await client.wait_ready(ready_timeout_s)
        run.llm = status.llm
        await client.ask(WARM_UP)  # loads weights into the page cache and fills the prompt cache
        for i, question in enumerate(questions, 1):
            connection.reset_conversation()
            streaming = await client.ask(question)
            run.streaming.append(streaming)
            connection.reset_conversation()
            baseline = await client.ask(question, pipeline="sequential", stop_after_first_audio=True)
            run.sequential.append(baseline)
            await asyncio.sleep(SETTLE_S)
            print(
                f"  [{model}] {i:2d}/{len(questions)} ttft {ms(streaming.ttft_s)} ttfa {ms(streaming.ttfa_s)}"
                f" (backend {ms(streaming.timings.ttfa_s)})"
                f" baseline ttfa {ms(baseline.ttfa_s)} words {streaming.words:3d}/{baseline.words:3d}"
                f" underruns {streaming.underruns} {streaming.status}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        if connection is not None:
            await connection.close()
        await supervisor.stop()
        player.close()
    return run


def print_report(results: dict[str, dict[str, Any]]) -> None:
    for model, fig in results.items():
        print(f"model {model} ({fig['llm']}), {fig['questions']} questions")
        for key, label in (
            ("ttft_s", "time to first token"),
            ("ttfa_s", "time to first audio"),
            ("backend_ttft_s", "  backend: first token"),
            ("backend_ttfa_s", "  backend: first frame sent"),
        ):
            print(f"  {label:32s} median {fig[key]['median']} s  p90 {fig[key]['p90']} s")
        base = fig["baseline_ttfa_s"]
        print(f"  {'sequential baseline first audio':32s} median {base['median']} s  p90 {base['p90']} s")
        ratio = fig["baseline_ratio_long_replies"]
        print(
            f"  {'baseline/streaming first audio':32s} median {ratio['median']}x  p90 {ratio['p90']}x"
            f"  (replies of {LONG_REPLY_WORDS}+ words: {fig['long_replies']})"
        )
        print(f"  {'tokens per second':32s} {fig['tokens_per_s']}")
        print(f"  {'synthesis real-time factor':32s} {fig['tts_rtf']}")
        print(f"  {'underruns':32s} {fig['underruns']}")
        if fig["failed"]:
            print(f"  failed questions: {fig['failed']}")
