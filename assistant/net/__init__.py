"""The websocket link to the backend, free of Qt so tools can use it directly."""
