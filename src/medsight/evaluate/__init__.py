"""medsight.evaluate"""
