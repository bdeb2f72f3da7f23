"""Tiny programs that show the floor for each figure; run by path, never imported by subjects."""
