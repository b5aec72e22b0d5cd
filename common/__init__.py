"""Server-side code shared by every Switchyard service."""
