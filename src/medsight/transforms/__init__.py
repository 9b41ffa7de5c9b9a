"""medsight.transforms: preprocessing per modality."""
