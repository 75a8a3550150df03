"""Event-loop building blocks every I/O layer shares: the clocks and supervised tasks."""
