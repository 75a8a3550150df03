"""The application: settings, building the components, the service roles, the CLI and logs."""
