"""The gateway under uvicorn: the server's set-up, the HTTP and WebSocket protocols that
bound what a client can make it hold, and the log format."""
