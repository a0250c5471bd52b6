"""Simulated venues: paper.py (simulated orders over a real client's live book) and synthetic.py (the offline
`sim` market). Internal: plugins import from `moonship_core`."""
