#!/usr/bin/env bash
# Regenerates the simulated caller's recorded utterances in agent/assets/caller/.
#
# The caller speaks with flite's "kal" voice: pocketsphinx understands it (espeak's voice it does
# not), and kal is a native 8 kHz diphone voice, i.e. telephone rate already. Every file is
# checked to be 8000 Hz mono 16-bit and converted if a flite build ever writes another rate.
#
# Needs:  apt-get install flite      (and python3 with numpy for the rare resampling fallback)
# Usage:  scripts/make_caller_audio.sh            (PYTHON=/path/to/python to choose the interpreter)
#         scripts/make_caller_audio.sh STEM...    only these recordings (new ones: the committed
#                                                 files stay byte for byte as they are)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="$here/agent/assets/caller"
python="${PYTHON:-python3}"
rate_hz=8000

command -v flite >/dev/null || { echo "flite not found: apt-get install flite" >&2; exit 1; }
mkdir -p "$out_dir"

# stem<TAB>text; the same table is written to utterances.txt for code and tests.
utterances=$(cat <<'TABLE'
book	i would like to book an appointment
name_john	my name is john smith
name_jane	it's jane doe
day_tuesday	next tuesday
date_dec_first	december first
time_3pm	three p m
time_1030	ten thirty in the morning
afternoon	in the afternoon please
email_john	john dot smith at example dot com
phone	five five five one two three four five six seven
yes	yes
yes_works	yes that works
no	no thanks
cancel	actually i want to cancel my appointment
reschedule	can i move my appointment
interrupt	wait sorry hold on
goodbye	thank you goodbye
backchannel	uh huh
company_acme	acme corporation
team_small	a small team
issue_sync	my calendar stopped syncing
estate	estate planning
haircut	a haircut please
cancel_short	i want to cancel
by_phone	by phone number
first_one	the first one please
urgent	this is urgent
opt_out	please take me off your list
dont_call	don't call me again
TABLE
)

to_8k_mono16() {  # $1 = wav path; rewrites it in place as 8 kHz mono 16-bit if it is not already
    "$python" - "$1" "$rate_hz" <<'PY'
import sys, wave
import numpy as np

path, rate_hz = sys.argv[1], int(sys.argv[2])
with wave.open(path, "rb") as w:
    src_hz, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
    raw = w.readframes(w.getnframes())
if (src_hz, channels, width) == (rate_hz, 1, 2):
    sys.exit(0)
if width != 2:
    sys.exit(f"{path}: {8 * width}-bit samples, expected 16-bit")
x = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).mean(axis=1)
n_out = int(round(len(x) * rate_hz / src_hz))
if src_hz > rate_hz:  # crude anti-alias: moving average over the decimation ratio
    k = int(np.ceil(src_hz / rate_hz))
    x = np.convolve(x, np.ones(k) / k, mode="same")
y = np.interp(np.arange(n_out) * src_hz / rate_hz, np.arange(len(x)), x)
with wave.open(path, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(rate_hz)
    w.writeframes(np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes())
print(f"{path}: converted {src_hz} Hz x{channels} to {rate_hz} Hz mono", file=sys.stderr)
PY
}

# flite's diphones can open with a short loud transient before the speech (its "wait" opens
# with 60 ms at -37 dBFS, then 160 ms of near silence): a listener hears a click, a VAD or the
# caller's voiced-frame rule hears the utterance begin 220 ms early, which made barge-in times
# read that much late. A leading voiced run of at most 100 ms followed by more than 80 ms of
# unvoiced frames is brought down to the level of that gap (a plosive's release, 40-60 ms
# before the vowel, is speech and stays). "Voiced": the caller's rule, within 35 dB of the
# loudest 20 ms frame and above -60 dBFS. tests/unit/test_caller_recordings.py checks it.
quiet_leading_click() {  # $1 = wav path (8 kHz mono 16-bit); rewritten only if it had a click
    "$python" - "$1" <<'PY'
import sys, wave
import numpy as np

FRAME, MAX_CLICK, MIN_GAP = 160, 5, 5  # samples per 20 ms; frames: click <= 100 ms, gap > 80 ms
path = sys.argv[1]
with wave.open(path, "rb") as w:
    params, x = w.getparams(), np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(float)
n = len(x) // FRAME
rms = np.sqrt(np.mean(x[: n * FRAME].reshape(n, FRAME) ** 2, axis=1))
voiced = rms >= max(rms.max() * 10 ** (-35 / 20), 32768 * 10 ** (-60 / 20))
first = int(np.argmax(voiced))
end = first
while end < n and voiced[end]:
    end += 1
gap = end
while gap < n and not voiced[gap]:
    gap += 1
if end - first > MAX_CLICK or gap - end < MIN_GAP or gap == n:
    sys.exit(0)
floor = float(np.median(rms[end:gap]))
gain = np.ones(n)  # the click and the gap's louder frames down to the gap's median level
gain[first:gap] = np.minimum(1.0, floor / rms[first:gap])
centres = np.arange(n) * FRAME + FRAME / 2  # gain ramps between frame centres: no new click
y = x * np.interp(np.arange(len(x)), centres, gain)
with wave.open(path, "wb") as w:
    w.setparams(params)
    w.writeframes(np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes())
print(f"{path}: leading click ({20 * (end - first)} ms) brought down to the {floor:.0f} RMS "
      "that follows it", file=sys.stderr)
PY
}

wanted=" $* "  # empty: every stem
for stem in "$@"; do
    grep -q "^$stem"$'\t' <<< "$utterances" || { echo "no utterance named $stem" >&2; exit 1; }
done

printf '%s\n' "$utterances" > "$out_dir/utterances.txt"
while IFS=$'\t' read -r stem text; do
    [[ -n "$stem" ]] || continue
    [[ $# -eq 0 || "$wanted" == *" $stem "* ]] || continue
    flite -voice kal -t "$text" -o "$out_dir/$stem.wav"
    to_8k_mono16 "$out_dir/$stem.wav"
    quiet_leading_click "$out_dir/$stem.wav"
done <<< "$utterances"
touch "$here/agent/assets/__init__.py" "$out_dir/__init__.py"
echo "wrote ${*:-all $(grep -c . "$out_dir/utterances.txt") utterances} to $out_dir"
