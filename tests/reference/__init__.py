"""Plain float64 NumPy references: the oracle every fastnn kernel is tested
against. Written for clarity, not speed; nothing here imports fastnn."""
