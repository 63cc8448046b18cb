#!/bin/sh
# Starts a private PulseAudio server with a virtual sound card for the audio tests
# (DESIGN.md section 6) and prints the environment to export. Idempotent: a second
# run reuses the server, the null sink and the keeper stream.
#
#   eval "$(tests/audio_env.sh)"
#   .venv/bin/pytest -m audio -q
#
# PARLEY_AUDIO_RUNTIME_DIR chooses the private runtime directory.
set -eu

runtime_dir=${PARLEY_AUDIO_RUNTIME_DIR:-/tmp/parley-audio-$(id -u)}
mkdir -p "$runtime_dir"
chmod 700 "$runtime_dir"
export XDG_RUNTIME_DIR="$runtime_dir"
export PULSE_RUNTIME_PATH="$runtime_dir/pulse"
export PULSE_SERVER="unix:$runtime_dir/pulse/native"

if ! pactl info >/dev/null 2>&1; then
    # --exit-idle-time=-1: never exit while the tests are idle between streams.
    pulseaudio -D --exit-idle-time=-1 --log-target=file:"$runtime_dir/pulseaudio.log" >&2
    tries=0
    until pactl info >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 50 ]; then
            echo "audio_env.sh: PulseAudio did not start; see $runtime_dir/pulseaudio.log" >&2
            exit 1
        fi
        sleep 0.1
    done
fi

if ! pactl list short sinks | grep -q '^[0-9]*[[:space:]]vsink[[:space:]]'; then
    pactl load-module module-null-sink sink_name=vsink >/dev/null
fi
pactl set-default-sink vsink
pactl set-default-source vsink.monitor

# Without a steady stream an idle null sink runs in 2-second blocks and every new
# stream starts about 2 s late; a silent keeper stream holds it at 20 ms.
keeper_pid_file="$runtime_dir/keeper.pid"
if ! { [ -f "$keeper_pid_file" ] && kill -0 "$(cat "$keeper_pid_file")" 2>/dev/null; }; then
    nohup pacat -p -d vsink --latency-msec=20 </dev/zero >/dev/null 2>&1 &
    echo $! >"$keeper_pid_file"
fi

echo "export XDG_RUNTIME_DIR='$runtime_dir'"
echo "export PULSE_RUNTIME_PATH='$runtime_dir/pulse'"
echo "export PULSE_SERVER='unix:$runtime_dir/pulse/native'"
