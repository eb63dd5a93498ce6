"""The runtime's console scripts, one module each, and what they share.

``image`` (nst-image), ``style`` (nst-style), ``video`` (nst-video), ``live`` (nst-live),
``doctor`` (nst-doctor), ``bench`` (nst-bench); ``options`` holds the model and style
options they share, ``common`` the conventions of every command (logging, exit codes,
signals). Only this room and ``bench`` may import PyTorch or ``stylecast.export``, and only
inside the function that needs it.
"""
