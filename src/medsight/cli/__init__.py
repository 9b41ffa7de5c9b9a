"""medsight.cli"""
