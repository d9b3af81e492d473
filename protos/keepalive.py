"""HTTP/2 keepalive: how often clients ping, and what servers accept.

A long stream (a watch, `ctl exec`, `ctl logs -f`) can sit idle for minutes. Clients
ping every CLIENT_PING_MS so a dead peer or a dropped NAT entry is noticed. A gRPC
server answers pings that come too often ("without data" in between) with GOAWAY
"too_many_pings", which ends every stream on the connection. What "too often" means is
gRPC core's default, and it has changed between releases (5 minutes in older ones; about
5 s in grpcio 1.85, measured), so Skiff's servers (API server, agent) state it:
pings down to SERVER_MIN_PING_MS apart are fine. tests/integration/test_keepalive.py
holds a watch open through a client pinging just above that rate.
"""

CLIENT_PING_MS = 30_000
SERVER_MIN_PING_MS = 5_000

CLIENT_OPTIONS = [("grpc.keepalive_time_ms", CLIENT_PING_MS)]
SERVER_OPTIONS = [("grpc.http2.min_ping_interval_without_data_ms", SERVER_MIN_PING_MS),
                  ("grpc.keepalive_permit_without_calls", 1)]
