"""medsight.explain"""
