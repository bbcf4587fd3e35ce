"""Native stderr chatter filtering (MediaPipe / TFLite / absl start-up lines) in worker processes."""

import subprocess
import sys

from cdrscreen.core.native import is_native_noise

SCRIPT = r"""
import os, time
from cdrscreen.core.native import filter_native_stderr
filter_native_stderr()
os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
os.write(2, b"INFO: W0000 00:00:1 12 inference_feedback_manager.cc:114] Feedback manager ...\n")
os.write(2, b"W0000 00:00:1 12 face_landmarker_graph.cc:174] Sets FaceBlendshapesGraph ...\n")
os.write(2, b"error: a real problem\n")
os.write(2, b"INFO: something else worth seeing\n")
time.sleep(0.3)
"""


def test_noise_lines_recognised_including_interleaved_tags():
    assert is_native_noise(b"W0000 00:00:17 1 gl_context.cc:369] GL version")
    assert is_native_noise(b"INFO: W0000 00:00:17 1 inference_feedback_manager.cc:114] ...")
    assert is_native_noise(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    assert not is_native_noise(b"INFO: something else worth seeing")
    assert not is_native_noise(b"error: x.mp4: video file not found")


def test_worker_filter_drops_chatter_and_keeps_real_lines():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, timeout=60)
    assert run.returncode == 0
    assert run.stderr.decode().splitlines() == ["error: a real problem", "INFO: something else worth seeing"]
