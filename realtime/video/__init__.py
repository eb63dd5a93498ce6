"""``nst-video``'s room: every frame of a file, stylized, with its timing, audio and metadata kept.

One video: ``plan`` (what the output can hold, checked before the first frame, with
``codecs``, ``audio`` and ``containers``) -> ``pipeline`` (``transcode``: three threads)
-> ``reader`` (decode) -> the Stylizer and the temporal blend -> ``writer`` (encode, mux,
copied audio packets). Many videos: ``folder`` (which files are videos, output names) ->
``batch`` (plan a run, progress, summary) -> ``jobs`` (one video as a worker runs it) ->
``workers`` (local processes) or ``cluster`` (Ray tasks). ``demo_clip`` writes the built-in clip.

Nothing is imported here: ``live.sinks`` reads ``containers`` before any preview window
exists, and PyAV must not be imported that early (``live.window`` says why).
"""
