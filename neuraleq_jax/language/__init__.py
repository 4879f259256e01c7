"""What people type: word descriptions and blends (:mod:`.compound`) read into weights over a
model's vocabulary.
"""
