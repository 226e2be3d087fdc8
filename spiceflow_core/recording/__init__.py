"""Recording and replay: the ``.sfrec`` format, the text capture reader and the replay
engine."""
