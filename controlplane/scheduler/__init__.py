"""The scheduler: puts Pending pods on nodes, and explains why when it cannot.

Shaped like kube-scheduler's framework, in Python:

- `nodeinfo`   what the scheduler knows about one pod (PodInfo) and one node (NodeInfo),
               computed once from their JSON form;
- `cache`      all NodeInfos plus "assumed" pods: the snapshot every decision reads;
- `framework`  Status, plugin interfaces, running plugins, the "0/3 nodes are available" message;
- `plugins/`   one module per filter or score plugin, named like Kubernetes';
- `algorithm`  one decision: filter nodes (a sample on big clusters), score, pick;
- `queue`      the scheduling queue: priority order, backoff, retry on cluster change;
- `scheduler`  the loop: informers -> queue -> decide -> assume -> bind (compare-and-swap);
- `preview`    the dry run behind `ctl schedule --dry-run`: every node, every verdict, every score;
- `config`     plugin weights and knobs from a YAML file.

Run alone with `python -m controlplane.scheduler --server ADDR [--config FILE]`.
"""
