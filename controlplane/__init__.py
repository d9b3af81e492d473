"""The control plane: API server on etcd, scheduler, controllers, and the client they share."""
