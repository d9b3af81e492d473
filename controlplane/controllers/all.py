"""The controllers `skiff-controlplane` runs on the leader, in start order.

Adding a controller: write its module, then add it to `default_controllers`.
"""

from __future__ import annotations

from controlplane.controllers.manager import Controller
from controlplane.controllers.settings import ControllerSettings


def default_controllers(settings: ControllerSettings) -> list[Controller]:
    controllers: list[Controller] = []
    # Each controller module appends itself here, e.g.:
    #   from controlplane.controllers.replicaset import ReplicaSetController
    #   controllers.append(ReplicaSetController(settings))
    from controlplane.controllers.nodeipam import NodeIpamController
    controllers.append(NodeIpamController(settings))
    return controllers
