"""An independent, straightforward implementation of the study's recipe (docs/study-reference.md).

Written from the reference document with plain librosa calls, one clip at a time, and no code shared with
``emovae_utils.dsp``. Used to check that the package computes the recipe (tests) and as the sequential
baseline of ``benchmarks/preprocess.py``.
"""

import struct

import librosa
import numpy as np
import webrtcvad
from scipy.ndimage import binary_dilation


def reference_features(path):
    y, sr = librosa.load(path, sr=None, mono=True)
    y = librosa.resample(y, orig_sr=sr, target_sr=16000)
    frame = 480  # 30 ms at 16 kHz
    scaled = y / np.max(np.abs(y))
    scaled = np.pad(scaled, (0, (-len(scaled)) % frame))
    pcm = struct.pack("%dh" % len(scaled), *np.round(32767 * scaled).astype(np.int16))
    vad = webrtcvad.Vad(3)
    flags = np.array([vad.is_speech(pcm[2 * i:2 * (i + frame)], 16000) for i in range(0, len(scaled), frame)])
    flags = binary_dilation(flags, np.ones(6))
    keep = np.repeat(flags, frame)[: len(y)]
    if keep.any():
        y = y[keep]
    y = y / np.max(y)
    S = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, win_length=1024, hop_length=256,
                                       window="hann", center=True, n_mels=80, fmin=0, fmax=8000)
    S = librosa.power_to_db(S)
    if S.shape[1] < 128:
        return librosa.util.fix_length(S, size=128, mode="edge")
    start = (S.shape[1] - 128) // 2
    return S[:, start:start + 128]
