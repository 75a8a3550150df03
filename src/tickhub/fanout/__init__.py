"""Fan-out: sessions, subscriptions, admission, snapshot and resume, from the bus to the peers."""
