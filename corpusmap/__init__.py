"""corpusmap"""
