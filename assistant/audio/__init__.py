"""Sound output: a bounded PCM ring buffer and the player that drains it into the device."""
