"""The producer: ticks ticks through the engines onto the bus; client requests into the engines."""
