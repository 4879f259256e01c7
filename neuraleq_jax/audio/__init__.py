"""Applying a setting to audio: filtering, strength, peak handling and loudness matching
(:mod:`.filtering`), and ITU-R BS.1770 loudness (:mod:`.loudness`).
"""
