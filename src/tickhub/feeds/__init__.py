"""Market feeds: one ``Feed`` interface, several implementations chosen by config."""
