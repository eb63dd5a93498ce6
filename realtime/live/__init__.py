"""``nst-live``'s room: one frame from a camera to a window, a virtual camera, a stream, a file.

A frame travels: ``captures`` (a camera, a stream, the demo: blocking reads) -> ``source``
(``LiveSource``: a thread that keeps only the newest frame) -> ``loop`` (``run_live``:
stylize, blend, sinks, window, top to bottom) -> ``sinks`` (virtual camera, UDP, recording,
snapshots) and ``window`` (the preview with its HUD). Around the loop: ``hotkeys`` (the key
table), ``controls`` (what each key does to the live state), ``stats`` (fps, latency, stage
times) and ``style_folder`` (the pictures of --style-dir, predicted in the background).

Nothing is imported here: the preview window must exist before PyAV is imported
(``window`` says why), so each module is imported by name where it is needed.
"""
