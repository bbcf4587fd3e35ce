"""Per-frame tracking shared by the visual feature groups and the FER side.

* :mod:`~cdrscreen.tracking.face`: the MediaPipe face/iris tracker (:func:`track_video`,
  :class:`TrackConfig`, :class:`FaceTrack`), computed once per video and cached;
* :mod:`~cdrscreen.tracking.pose`: the rigid face model and the per-frame head-pose solve;
* :mod:`~cdrscreen.tracking.gaps`: gap handling (interpolate short gaps, split at long ones);
* :mod:`~cdrscreen.tracking.resample`: even-time resampling of variable-frame-rate tracks;
* :mod:`~cdrscreen.tracking.smoothing`: torch-free sliding-window smoothing of per-frame
  expression predictions.

Nothing here imports :mod:`cdrscreen.features`: the data flow is one way
(media -> tracking -> features).
"""
