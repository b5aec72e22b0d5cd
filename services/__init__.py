"""The Switchyard services, each its own process."""
