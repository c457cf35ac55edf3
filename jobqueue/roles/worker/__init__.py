"""The worker role: a supervisor (supervisor.py) and its worker processes (process.py), each
a hub (hub.py) that claims and settles for its slots (slot.py), which run the handlers."""
