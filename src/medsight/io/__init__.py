"""medsight.io"""
