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
    from controlplane.controllers.replicaset import ReplicaSetController
    controllers.append(ReplicaSetController(settings))
    from controlplane.controllers.deployment import DeploymentController
    controllers.append(DeploymentController(settings))
    from controlplane.controllers.garbagecollector import GarbageCollector
    controllers.append(GarbageCollector(settings))
    from controlplane.controllers.namespace import NamespaceController
    controllers.append(NamespaceController(settings))
    from controlplane.controllers.nodelifecycle import NodeLifecycleController
    controllers.append(NodeLifecycleController(settings))
    from controlplane.controllers.daemonset import DaemonSetController
    controllers.append(DaemonSetController(settings))
    from controlplane.controllers.job import JobController
    controllers.append(JobController(settings))
    from controlplane.controllers.cronjob import CronJobController
    controllers.append(CronJobController(settings))
    from controlplane.controllers.resourcequota import ResourceQuotaController
    controllers.append(ResourceQuotaController(settings))
    from controlplane.controllers.disruption import DisruptionController
    controllers.append(DisruptionController(settings))
    from controlplane.controllers.podautoscaler import HorizontalPodAutoscalerController
    controllers.append(HorizontalPodAutoscalerController(settings))
    from controlplane.controllers.serviceaccount import ServiceAccountsController
    controllers.append(ServiceAccountsController(settings))
    from controlplane.controllers.endpointslice import EndpointSliceController
    controllers.append(EndpointSliceController(settings))
    from controlplane.controllers.endpoints import EndpointsController
    controllers.append(EndpointsController(settings))
    from controlplane.controllers.statefulset import StatefulSetController
    controllers.append(StatefulSetController(settings))
    from controlplane.controllers.persistentvolume import PersistentVolumeController
    controllers.append(PersistentVolumeController(settings))
    return controllers
