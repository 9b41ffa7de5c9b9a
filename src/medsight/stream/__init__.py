"""Real-time processing of signal streams (samples arriving in chunks, in order).

:mod:`~medsight.stream.ecg` holds the streaming ECG monitor: a causal R-peak detector, rhythm
updates from an ECG bundle and the alerts they raise, plus replay of recordings and a benchmark.
"""

from __future__ import annotations

from medsight.stream.ecg import (
    Alert,
    CausalQrsDetector,
    ReplayRun,
    RhythmUpdate,
    StreamingEcgDetector,
    StreamSettings,
    StreamStats,
    replay,
    stream_benchmark,
)

__all__ = [
    "Alert",
    "CausalQrsDetector",
    "ReplayRun",
    "RhythmUpdate",
    "StreamSettings",
    "StreamStats",
    "StreamingEcgDetector",
    "replay",
    "stream_benchmark",
]
