"""The producer: feed ticks through the engines onto the bus; client requests into the engines."""
