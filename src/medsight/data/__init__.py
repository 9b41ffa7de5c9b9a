"""medsight.data"""
