"""Cluster DNS: a node-local DNS server in every agent, answering its own pods.

    records.py     Services and EndpointSlices -> records, an in-memory index (O(1) lookups)
    answer.py      a question about the cluster domain -> a response (A, AAAA, SRV, PTR, CNAME,
                   SOA, NXDOMAIN/NODATA), or "not ours"
    forward.py     everything else, to the node's upstream resolvers, with a TTL-respecting cache
    responder.py   bytes in, bytes out: parsing, FORMERR/NOTIMP/REFUSED, truncation, the
                   cache of encoded answers (the hot path)
    server.py      the UDP and TCP sockets
    resolvconf.py  a pod's /etc/resolv.conf from its dnsPolicy and dnsConfig
    node.py        the agent's part: informers feeding the index, the server on the pod
                   gateway's address once the pod network is up

The wire format is dnspython's; nothing here packs DNS messages by hand.
"""
