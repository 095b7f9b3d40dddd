#!/bin/sh
# Regenerate ccswitch's built-in prompts (committed; rerun only to change them):
#   dialplans/sounds/qa_notice.wav  "This call may be recorded ..." (espeak-ng), ~3-4 s
#   dialplans/sounds/moh.wav        ~8 s music-on-hold loop: soft sine arpeggios
# Both are 8 kHz mono 16-bit PCM WAV. The music only uses notes at 523-880 Hz so
# the test tones (440 Hz and 1000 Hz) stay distinguishable from it; every note
# fades in and out, so the file loops without a click.
# Needs: espeak-ng, sox.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/dialplans/sounds"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

fmt="-r 8000 -c 1 -b 16 -e signed-integer"

# --- QA notice -------------------------------------------------------------
espeak-ng -v en-us -s 180 -a 150 -w "$tmp/notice_raw.wav" \
  "This call may be recorded for quality assurance and training purposes."
# Resample, trim leading/trailing silence (reverse trick), keep 0.15 s of
# lead-in/out so the first syllable is not clipped, normalise to -3 dBFS.
sox "$tmp/notice_raw.wav" $fmt "$tmp/notice_trim.wav" \
  gain -6 highpass 120 \
  silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
  pad 0.15 0.15 norm -3
cp "$tmp/notice_trim.wav" "$out/qa_notice.wav"

# --- Music on hold ----------------------------------------------------------
# Four bars, four notes of 0.5 s each (8 s): C - Am - F - C/G voicings.
# C5 523.25, D5 587.33, E5 659.26, F5 698.46, G5 783.99, A5 880.00
notes="523.25 659.26 783.99 659.26
       523.25 659.26 880.00 659.26
       523.25 698.46 880.00 698.46
       587.33 783.99 659.26 523.25"
i=0
list=""
for f in $notes; do
  i=$((i + 1))
  n=$(printf '%s/note%02d.wav' "$tmp" "$i")
  # soft attack, gentle decay to silence: no clicks at note or loop boundaries
  sox -n $fmt "$n" synth 0.5 sine "$f" fade q 0.04 0.5 0.22 vol 0.22
  list="$list $n"
done
# shellcheck disable=SC2086
sox $list $fmt "$out/moh.wav"

for f in "$out/qa_notice.wav" "$out/moh.wav"; do
  printf '%s: %s s\n' "$f" "$(soxi -D "$f")"
done
