"""Controllers: level-triggered loops that make the cluster match what users asked for.

Each controller is one module (replicaset, deployment, daemonset, job,
garbagecollector, namespace, nodelifecycle). They share informers through
`manager.SharedInformers` and run together in a `manager.Manager`, which the
control plane starts only on the elected leader (see controlplane/leader.py).

Shape of every controller (controller-runtime / kube-controller-manager):
event handlers only turn events into keys on the controller's work queue; a
worker takes a key, reads the cached state, reconciles, and either finishes,
requeues after a delay, or retries with backoff.
"""
