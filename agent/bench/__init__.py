"""``slotline bench``: an open, reproducible voice-to-voice latency benchmark for Twilio Media
Streams servers (Slotline itself, or any server given by URL).

Modules, in the order a run uses them:

* ``args`` / ``cli`` — the command line; ``cli.run_load`` is one fixed-load run as a function.
* ``profiles`` — vendor latency profiles (instant, cloud, real, YAML).
* ``vendors`` — Deepgram, OpenAI and ElevenLabs emulators slowed down by a profile.
* ``target`` — what is phoned: Slotline in a subprocess or in-process, or a foreign URL.
* ``conversation`` — what the simulated callers say (recorded speech, scripted barge-ins).
* ``runner`` — N concurrent callers (``agent.sim.caller``), ramp, redial, stop.
* ``sysstat`` — CPU and RSS of local processes from /proc.
* ``metrics`` — per-turn records, caller and call-log latencies matched, percentiles.
* ``report`` — the versioned JSON result (``result.schema.json``) and the summary table.
* ``svg`` / ``html`` — the self-contained HTML report with hand-drawn SVG plots.
* ``capacity`` — raise N until a budget breaks; ``compare`` — two results side by side.

It runs the vendors' emulators: the ``emulators`` extra (``report`` says so when it is missing).
"""
