"""Independent reference implementations ("oracles") transcribed from official code.

See README.md in this directory for the source of every file.
"""
