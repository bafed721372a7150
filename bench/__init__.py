"""Performance benchmarks for superwidgets, run as ``python -m bench NAME``.

``NAME`` is one of ``hooks``, ``import``, ``wire``, ``latency`` or ``all``. Each benchmark
prints a JSON header line (machine, torch version, thread count, load) and then
one JSON line per figure::

    {"name": ..., "ours": ..., "baseline": ..., "ratio": ours / baseline,
     "target": upper bound for ratio, "pass": ratio <= target, ...}

and rewrites its own section of ``docs/BENCHMARKS.md`` (between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``). Times are in seconds;
ours and baseline are measured interleaved in the same process (medians of
many repetitions, after a warm-up), so the ratio is robust to the machine's
speed and, mostly, to its load.
"""
