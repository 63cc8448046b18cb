"""The widgets of the Parley window."""
