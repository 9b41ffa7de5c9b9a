"""Single-lead ECG processing on plain NumPy arrays: a lead ``x`` (1-D, float) and ``fs`` in Hz.

Modules: :mod:`~medsight.signal.filters` (band-pass, notch, baseline, NeuroKit2 cleaning),
:mod:`~medsight.signal.peaks` (R-peak detection and matching against annotations),
:mod:`~medsight.signal.hrv` (RR-interval, morphology and whole-record features),
:mod:`~medsight.signal.quality` (is this record usable?) and :mod:`~medsight.signal.beats`
(AAMI beat classes, beat windows, the de Chazal inter-patient split of MIT-BIH).

Nothing is imported here, so ``import medsight.signal.beats`` does not pay for NeuroKit2's import.
"""
