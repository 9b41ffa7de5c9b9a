"""Privacy: DICOM de-identification (PS3.15 Basic Profile), clinical-note PHI scrubbing, keyed
pseudonyms and verification of de-identified output."""
