"""Developer tools shipped with the CLI: the stream checker, the recorder and the Kite emulator."""
