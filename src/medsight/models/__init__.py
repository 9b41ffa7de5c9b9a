"""medsight.models"""
