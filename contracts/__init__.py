"""What crosses Temporal between Sebaya's own parts: workflow inputs, update results and
outcomes, and the names to address workflows by.

Activities start pairings and the web service sends updates through these names and types,
without importing the workflow code (which would tie the lower layer to the upper one).
"""
