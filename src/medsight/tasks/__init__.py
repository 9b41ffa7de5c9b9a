"""medsight.tasks: each task ties a modality to its data, model, metrics and report."""
