"""The replay feed: tick files written by ``tickhub record`` and minute-bar files, played back."""
