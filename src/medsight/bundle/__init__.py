"""medsight.bundle"""
