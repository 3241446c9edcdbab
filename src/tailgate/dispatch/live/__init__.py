"""The live request path: the UDP server (dispatcher and worker processes), the open-loop load
client, the PSP wire format and the shared-memory rings between processes."""
