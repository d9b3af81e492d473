from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApplyRequest(_message.Message):
    __slots__ = ("object", "dry_run", "field_manager")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    FIELD_MANAGER_FIELD_NUMBER: _ClassVar[int]
    object: bytes
    dry_run: bool
    field_manager: str
    def __init__(self, object: _Optional[bytes] = ..., dry_run: _Optional[bool] = ..., field_manager: _Optional[str] = ...) -> None: ...

class ApplyResponse(_message.Message):
    __slots__ = ("object", "result")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    object: bytes
    result: str
    def __init__(self, object: _Optional[bytes] = ..., result: _Optional[str] = ...) -> None: ...

class CreateRequest(_message.Message):
    __slots__ = ("object", "dry_run")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    object: bytes
    dry_run: bool
    def __init__(self, object: _Optional[bytes] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ObjectResponse(_message.Message):
    __slots__ = ("object",)
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    object: bytes
    def __init__(self, object: _Optional[bytes] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("kind", "namespace", "name")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    kind: str
    namespace: str
    name: str
    def __init__(self, kind: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("kind", "namespace", "label_selector", "field_selector")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    FIELD_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    kind: str
    namespace: str
    label_selector: str
    field_selector: str
    def __init__(self, kind: _Optional[str] = ..., namespace: _Optional[str] = ..., label_selector: _Optional[str] = ..., field_selector: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("items", "resource_version")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedScalarFieldContainer[bytes]
    resource_version: str
    def __init__(self, items: _Optional[_Iterable[bytes]] = ..., resource_version: _Optional[str] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("object", "dry_run")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    object: bytes
    dry_run: bool
    def __init__(self, object: _Optional[bytes] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("kind", "namespace", "name", "propagation_policy", "grace_period_seconds", "dry_run", "resource_version")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROPAGATION_POLICY_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    kind: str
    namespace: str
    name: str
    propagation_policy: str
    grace_period_seconds: int
    dry_run: bool
    resource_version: str
    def __init__(self, kind: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., propagation_policy: _Optional[str] = ..., grace_period_seconds: _Optional[int] = ..., dry_run: _Optional[bool] = ..., resource_version: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("object", "finished")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    object: bytes
    finished: bool
    def __init__(self, object: _Optional[bytes] = ..., finished: _Optional[bool] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("kind", "namespace", "label_selector", "field_selector", "resource_version", "allow_bookmarks", "allow_batching")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    FIELD_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALLOW_BOOKMARKS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_BATCHING_FIELD_NUMBER: _ClassVar[int]
    kind: str
    namespace: str
    label_selector: str
    field_selector: str
    resource_version: str
    allow_bookmarks: bool
    allow_batching: bool
    def __init__(self, kind: _Optional[str] = ..., namespace: _Optional[str] = ..., label_selector: _Optional[str] = ..., field_selector: _Optional[str] = ..., resource_version: _Optional[str] = ..., allow_bookmarks: _Optional[bool] = ..., allow_batching: _Optional[bool] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("type", "object", "more")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    type: str
    object: bytes
    more: _containers.RepeatedCompositeFieldContainer[WatchEvent]
    def __init__(self, type: _Optional[str] = ..., object: _Optional[bytes] = ..., more: _Optional[_Iterable[_Union[WatchEvent, _Mapping]]] = ...) -> None: ...

class BindRequest(_message.Message):
    __slots__ = ("namespace", "name", "node_name", "uid", "resource_version", "scheduled_event_message", "event_source")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_EVENT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_SOURCE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    node_name: str
    uid: str
    resource_version: str
    scheduled_event_message: str
    event_source: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., node_name: _Optional[str] = ..., uid: _Optional[str] = ..., resource_version: _Optional[str] = ..., scheduled_event_message: _Optional[str] = ..., event_source: _Optional[str] = ...) -> None: ...

class BindManyRequest(_message.Message):
    __slots__ = ("binds",)
    BINDS_FIELD_NUMBER: _ClassVar[int]
    binds: _containers.RepeatedCompositeFieldContainer[BindRequest]
    def __init__(self, binds: _Optional[_Iterable[_Union[BindRequest, _Mapping]]] = ...) -> None: ...

class BindResult(_message.Message):
    __slots__ = ("code", "message", "object")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    object: bytes
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., object: _Optional[bytes] = ...) -> None: ...

class BindManyResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BindResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BindResult, _Mapping]]] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("id", "apply", "create", "get", "update", "update_status", "delete", "bind", "bind_many")
    ID_FIELD_NUMBER: _ClassVar[int]
    APPLY_FIELD_NUMBER: _ClassVar[int]
    CREATE_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_STATUS_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    BIND_FIELD_NUMBER: _ClassVar[int]
    BIND_MANY_FIELD_NUMBER: _ClassVar[int]
    id: int
    apply: ApplyRequest
    create: CreateRequest
    get: GetRequest
    update: UpdateRequest
    update_status: UpdateRequest
    delete: DeleteRequest
    bind: BindRequest
    bind_many: BindManyRequest
    def __init__(self, id: _Optional[int] = ..., apply: _Optional[_Union[ApplyRequest, _Mapping]] = ..., create: _Optional[_Union[CreateRequest, _Mapping]] = ..., get: _Optional[_Union[GetRequest, _Mapping]] = ..., update: _Optional[_Union[UpdateRequest, _Mapping]] = ..., update_status: _Optional[_Union[UpdateRequest, _Mapping]] = ..., delete: _Optional[_Union[DeleteRequest, _Mapping]] = ..., bind: _Optional[_Union[BindRequest, _Mapping]] = ..., bind_many: _Optional[_Union[BindManyRequest, _Mapping]] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("id", "code", "message", "apply", "object", "delete", "bind_many")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    APPLY_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    BIND_MANY_FIELD_NUMBER: _ClassVar[int]
    id: int
    code: int
    message: str
    apply: ApplyResponse
    object: ObjectResponse
    delete: DeleteResponse
    bind_many: BindManyResponse
    def __init__(self, id: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., apply: _Optional[_Union[ApplyResponse, _Mapping]] = ..., object: _Optional[_Union[ObjectResponse, _Mapping]] = ..., delete: _Optional[_Union[DeleteResponse, _Mapping]] = ..., bind_many: _Optional[_Union[BindManyResponse, _Mapping]] = ...) -> None: ...

class RequestBatch(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[StreamRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[StreamRequest, _Mapping]]] = ...) -> None: ...

class ResponseBatch(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[StreamResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[StreamResponse, _Mapping]]] = ...) -> None: ...

class SchedulePreviewRequest(_message.Message):
    __slots__ = ("pod",)
    POD_FIELD_NUMBER: _ClassVar[int]
    pod: bytes
    def __init__(self, pod: _Optional[bytes] = ...) -> None: ...

class SchedulePreviewResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: bytes
    def __init__(self, result: _Optional[bytes] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("namespace", "pod", "container", "follow", "previous", "tail_lines", "since_seconds", "timestamps")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    SINCE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    pod: str
    container: str
    follow: bool
    previous: bool
    tail_lines: int
    since_seconds: int
    timestamps: bool
    def __init__(self, namespace: _Optional[str] = ..., pod: _Optional[str] = ..., container: _Optional[str] = ..., follow: _Optional[bool] = ..., previous: _Optional[bool] = ..., tail_lines: _Optional[int] = ..., since_seconds: _Optional[int] = ..., timestamps: _Optional[bool] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ExecStart(_message.Message):
    __slots__ = ("namespace", "pod", "container", "command", "tty", "stdin")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    pod: str
    container: str
    command: _containers.RepeatedScalarFieldContainer[str]
    tty: bool
    stdin: bool
    def __init__(self, namespace: _Optional[str] = ..., pod: _Optional[str] = ..., container: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., tty: _Optional[bool] = ..., stdin: _Optional[bool] = ...) -> None: ...

class TerminalSize(_message.Message):
    __slots__ = ("rows", "cols")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    cols: int
    def __init__(self, rows: _Optional[int] = ..., cols: _Optional[int] = ...) -> None: ...

class ExecInput(_message.Message):
    __slots__ = ("start", "stdin", "stdin_closed", "resize")
    START_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    STDIN_CLOSED_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    start: ExecStart
    stdin: bytes
    stdin_closed: bool
    resize: TerminalSize
    def __init__(self, start: _Optional[_Union[ExecStart, _Mapping]] = ..., stdin: _Optional[bytes] = ..., stdin_closed: _Optional[bool] = ..., resize: _Optional[_Union[TerminalSize, _Mapping]] = ...) -> None: ...

class ExecOutput(_message.Message):
    __slots__ = ("stdout", "stderr", "exited", "exit_code")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    stdout: bytes
    stderr: bytes
    exited: bool
    exit_code: int
    def __init__(self, stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., exited: _Optional[bool] = ..., exit_code: _Optional[int] = ...) -> None: ...

class PortForwardStart(_message.Message):
    __slots__ = ("namespace", "pod", "port")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    pod: str
    port: int
    def __init__(self, namespace: _Optional[str] = ..., pod: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class PortForwardData(_message.Message):
    __slots__ = ("start", "data", "closed")
    START_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    start: PortForwardStart
    data: bytes
    closed: bool
    def __init__(self, start: _Optional[_Union[PortForwardStart, _Mapping]] = ..., data: _Optional[bytes] = ..., closed: _Optional[bool] = ...) -> None: ...

class ImageChunk(_message.Message):
    __slots__ = ("node", "data")
    NODE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    node: str
    data: bytes
    def __init__(self, node: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ImageRequest(_message.Message):
    __slots__ = ("node", "image")
    NODE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    node: str
    image: str
    def __init__(self, node: _Optional[str] = ..., image: _Optional[str] = ...) -> None: ...

class NodeImage(_message.Message):
    __slots__ = ("node", "names", "digest", "size")
    NODE_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    node: str
    names: _containers.RepeatedScalarFieldContainer[str]
    digest: str
    size: int
    def __init__(self, node: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., digest: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class ImageResult(_message.Message):
    __slots__ = ("images", "errors")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[NodeImage]
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, images: _Optional[_Iterable[_Union[NodeImage, _Mapping]]] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class VersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionResponse(_message.Message):
    __slots__ = ("version", "etcd_version", "python_version")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETCD_VERSION_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    etcd_version: str
    python_version: str
    def __init__(self, version: _Optional[str] = ..., etcd_version: _Optional[str] = ..., python_version: _Optional[str] = ...) -> None: ...

class DiscoveryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResourceInfo(_message.Message):
    __slots__ = ("kind", "plural", "singular", "short_names", "group", "version", "namespaced", "verbs")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PLURAL_FIELD_NUMBER: _ClassVar[int]
    SINGULAR_FIELD_NUMBER: _ClassVar[int]
    SHORT_NAMES_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACED_FIELD_NUMBER: _ClassVar[int]
    VERBS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    plural: str
    singular: str
    short_names: _containers.RepeatedScalarFieldContainer[str]
    group: str
    version: str
    namespaced: bool
    verbs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[str] = ..., plural: _Optional[str] = ..., singular: _Optional[str] = ..., short_names: _Optional[_Iterable[str]] = ..., group: _Optional[str] = ..., version: _Optional[str] = ..., namespaced: _Optional[bool] = ..., verbs: _Optional[_Iterable[str]] = ...) -> None: ...

class DiscoveryResponse(_message.Message):
    __slots__ = ("resources",)
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[ResourceInfo]
    def __init__(self, resources: _Optional[_Iterable[_Union[ResourceInfo, _Mapping]]] = ...) -> None: ...

class MetricsRequest(_message.Message):
    __slots__ = ("namespace", "label_selector", "name", "pod_uids")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    POD_UIDS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    label_selector: str
    name: str
    pod_uids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespace: _Optional[str] = ..., label_selector: _Optional[str] = ..., name: _Optional[str] = ..., pod_uids: _Optional[_Iterable[str]] = ...) -> None: ...

class ContainerMetrics(_message.Message):
    __slots__ = ("name", "cpu_nanocores", "memory_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CPU_NANOCORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    cpu_nanocores: int
    memory_bytes: int
    def __init__(self, name: _Optional[str] = ..., cpu_nanocores: _Optional[int] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class PodMetrics(_message.Message):
    __slots__ = ("namespace", "name", "uid", "node", "containers", "timestamp", "window_seconds")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    uid: str
    node: str
    containers: _containers.RepeatedCompositeFieldContainer[ContainerMetrics]
    timestamp: str
    window_seconds: float
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., uid: _Optional[str] = ..., node: _Optional[str] = ..., containers: _Optional[_Iterable[_Union[ContainerMetrics, _Mapping]]] = ..., timestamp: _Optional[str] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class NodeMetrics(_message.Message):
    __slots__ = ("name", "cpu_nanocores", "memory_bytes", "timestamp", "window_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CPU_NANOCORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    cpu_nanocores: int
    memory_bytes: int
    timestamp: str
    window_seconds: float
    def __init__(self, name: _Optional[str] = ..., cpu_nanocores: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., timestamp: _Optional[str] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class MetricsResponse(_message.Message):
    __slots__ = ("nodes", "pods", "errors", "pending")
    NODES_FIELD_NUMBER: _ClassVar[int]
    PODS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeMetrics]
    pods: _containers.RepeatedCompositeFieldContainer[PodMetrics]
    errors: _containers.RepeatedScalarFieldContainer[str]
    pending: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeMetrics, _Mapping]]] = ..., pods: _Optional[_Iterable[_Union[PodMetrics, _Mapping]]] = ..., errors: _Optional[_Iterable[str]] = ..., pending: _Optional[_Iterable[str]] = ...) -> None: ...

class AccessReviewRequest(_message.Message):
    __slots__ = ("verb", "resource", "group", "namespace", "name", "user", "groups")
    VERB_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    verb: str
    resource: str
    group: str
    namespace: str
    name: str
    user: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, verb: _Optional[str] = ..., resource: _Optional[str] = ..., group: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., user: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...

class AccessReviewResponse(_message.Message):
    __slots__ = ("allowed", "reason", "user")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    user: str
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., user: _Optional[str] = ...) -> None: ...

class TokenRequestMessage(_message.Message):
    __slots__ = ("namespace", "service_account", "pod_name", "pod_uid", "audiences", "expiration_seconds")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    POD_UID_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    audiences: _containers.RepeatedScalarFieldContainer[str]
    expiration_seconds: int
    def __init__(self, namespace: _Optional[str] = ..., service_account: _Optional[str] = ..., pod_name: _Optional[str] = ..., pod_uid: _Optional[str] = ..., audiences: _Optional[_Iterable[str]] = ..., expiration_seconds: _Optional[int] = ...) -> None: ...

class TokenResponse(_message.Message):
    __slots__ = ("token", "expiration_timestamp")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    token: str
    expiration_timestamp: int
    def __init__(self, token: _Optional[str] = ..., expiration_timestamp: _Optional[int] = ...) -> None: ...

class NodeCertificatesRequest(_message.Message):
    __slots__ = ("node_name", "client_csr", "serving_csr", "agent_address")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CSR_FIELD_NUMBER: _ClassVar[int]
    SERVING_CSR_FIELD_NUMBER: _ClassVar[int]
    AGENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    client_csr: bytes
    serving_csr: bytes
    agent_address: str
    def __init__(self, node_name: _Optional[str] = ..., client_csr: _Optional[bytes] = ..., serving_csr: _Optional[bytes] = ..., agent_address: _Optional[str] = ...) -> None: ...

class NodeCertificatesResponse(_message.Message):
    __slots__ = ("client_certificate", "serving_certificate", "ca_certificate")
    CLIENT_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    SERVING_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    client_certificate: bytes
    serving_certificate: bytes
    ca_certificate: bytes
    def __init__(self, client_certificate: _Optional[bytes] = ..., serving_certificate: _Optional[bytes] = ..., ca_certificate: _Optional[bytes] = ...) -> None: ...

class EvictRequest(_message.Message):
    __slots__ = ("namespace", "name", "grace_period_seconds", "dry_run")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    grace_period_seconds: int
    dry_run: bool
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., grace_period_seconds: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...
