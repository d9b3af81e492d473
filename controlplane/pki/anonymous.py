"""The anonymous client certificate: how a caller with only a bearer token gets through TLS.

gRPC Python can make a server require and verify a client certificate, or not ask for one,
but not "ask, and verify it if given" (C core's GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY,
which Kubernetes' API server uses so that token callers need no certificate). The API
server therefore requires one, and trusts two roots: the cluster CA and the CA below.
This CA signed exactly one certificate, the one below, and its key was thrown away when
it was made, so no other certificate can ever chain to it. The certificate and its key
are public on purpose: presenting them proves nothing, and the authenticator
(controlplane/auth/authn.py) grants an identity only to certificates the cluster CA
signed, checked with the CA's key. A caller with this certificate and no bearer token
is refused as unauthenticated.
"""

CA = b'-----BEGIN CERTIFICATE-----\nMIIBkTCCATegAwIBAgIUPkH6GF4sZ/0v+f1azE6crYO0IpMwCgYIKoZIzj0EAwIw\nJDEiMCAGA1UEAwwZc2tpZmYtYW5vbnltb3VzLWNsaWVudC1jYTAgFw0yNjEyMDcw\nMTMyNDJaGA8yMTI2MTExMzAxMzI0MlowJDEiMCAGA1UEAwwZc2tpZmYtYW5vbnlt\nb3VzLWNsaWVudC1jYTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABA7Em9FfRdgp\nYJLqtWRYZZ/HI/7dZbgQS3PJpOlORCfSv7+8rP+uiCXiqxy7ZsfPBHd1/ydX4G7B\nh3NS/NAotOKjRTBDMBIGA1UdEwEB/wQIMAYBAf8CAQAwDgYDVR0PAQH/BAQDAgGG\nMB0GA1UdDgQWBBShdazmgUL1Hq/HQBKBpcWSBmu5vTAKBggqhkjOPQQDAgNIADBF\nAiBZ5jFwN8q48tC39aAuDaj4IzebNNbXgAur/F2MnaZJ8gIhAKB2zmPEZXt/kfcT\nCRdnbpOWHPLY3SvC5imT16zvotvb\n-----END CERTIFICATE-----\n'

CERT = b'-----BEGIN CERTIFICATE-----\nMIIBmTCCAT+gAwIBAgIURFflfbb94CLz11F/DZlrpnM1wKQwCgYIKoZIzj0EAwIw\nJDEiMCAGA1UEAwwZc2tpZmYtYW5vbnltb3VzLWNsaWVudC1jYTAgFw0yNjEyMDcw\nMTMyNDJaGA8yMTI1MDcwMTAxMzc0MlowGzEZMBcGA1UEAwwQc3lzdGVtOmFub255\nbW91czBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABDZo4nR09nBIFGVffe8Zblzv\neaq18EMTJxgWkdHsYqeZBS7j5QWZ5poR8ssrjWMcp6gKRSJGZEcU/fZjgq9ANzGj\nVjBUMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCCsG\nAQUFBwMCMB8GA1UdIwQYMBaAFKF1rOaBQvUer8dAEoGlxZIGa7m9MAoGCCqGSM49\nBAMCA0gAMEUCIDTTDa1qYAkDTO5Hw+cX0l7We28p6lARiYDSGVW1wyJAAiEA9HC6\nuaFklvDoO2iKz2UOoc1l8MCCt9QzEzsrmCNRZpQ=\n-----END CERTIFICATE-----\n'

KEY = b'-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgn9mlUG0pH8KxvpYe\nxxR2Tdk6ZCFrA+OTFfgsc4+002yhRANCAAQ2aOJ0dPZwSBRlX33vGW5c73mqtfBD\nEycYFpHR7GKnmQUu4+UFmeaaEfLLK41jHKeoCkUiRmRHFP32Y4KvQDcx\n-----END PRIVATE KEY-----\n'
