"""Speech-to-text engines: faster-whisper on this machine, or an OpenAI-compatible endpoint."""
