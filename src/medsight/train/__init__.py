"""medsight.train"""
