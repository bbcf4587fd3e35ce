"""Media decoding (PyAV): video in :mod:`cdrscreen.media.video`, audio in :mod:`.audio`.

Nothing is imported eagerly here, so each submodule works with only its own
dependencies installed; import the submodule you need, e.g.
``from cdrscreen.media.video import iter_frames``.
"""
