from enum import Enum


class DataType(str, Enum):
    TYPE_BOOL = "TYPE_BOOL"
    TYPE_UINT8 = "TYPE_UINT8"
    TYPE_UINT16 = "TYPE_UINT16"
    TYPE_UINT32 = "TYPE_UINT32"
    TYPE_UINT64 = "TYPE_UINT64"
    TYPE_INT8 = "TYPE_INT8"
    TYPE_INT16 = "TYPE_INT16"
    TYPE_INT32 = "TYPE_INT32"
    TYPE_INT64 = "TYPE_INT64"
    TYPE_FP16 = "TYPE_FP16"
    TYPE_BF16 = "TYPE_BF16"
    TYPE_FP32 = "TYPE_FP32"
    TYPE_FP64 = "TYPE_FP64"
    TYPE_STRING = "TYPE_STRING"


class DeviceKind(str, Enum):
    CPU = "CPU"
    CUDA = "CUDA"


class Engine(str, Enum):
    NONE = "NONE"
    TFS = "TFS"
    TORCHSCRIPT = "TORCHSCRIPT"
    ONNX = "ONNX"
    TRT = "TRT"
    TVM = "TVM"
    CUSTOMIZED = "CUSTOMIZED"
    PYTORCH = "PYTORCH"
    AOTINDUCTOR = "AOTINDUCTOR"


class Framework(str, Enum):
    TensorFlow = "TensorFlow"
    PyTorch = "PyTorch"
    Sklearn = "Sklearn"
    XGBoost = "XGBoost"
    LightGBM = "LightGBM"
    ONNX = "ONNX"


class JobKind(str, Enum):
    PROFILE = "PROFILE"
    CONVERT = "CONVERT"


class JobStatus(str, Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class ModelInputFormat(str, Enum):
    FORMAT_NONE = "FORMAT_NONE"
    FORMAT_NHWC = "FORMAT_NHWC"
    FORMAT_NCHW = "FORMAT_NCHW"


class ModelStatus(str, Enum):
    PUBLISHED = "PUBLISHED"
    CONVERTED = "CONVERTED"
    PROFILING = "PROFILING"
    IN_SERVICE = "IN_SERVICE"
    DRAFT = "DRAFT"
    VALIDATING = "VALIDATING"
    TRAINING = "TRAINING"


class RegistryEventType(str, Enum):
    MODEL_REGISTERED = "MODEL_REGISTERED"
    MODEL_UPDATED = "MODEL_UPDATED"
    MODEL_DELETED = "MODEL_DELETED"
    TAG_SET = "TAG_SET"
    TAG_DELETED = "TAG_DELETED"
    ALIAS_SET = "ALIAS_SET"
    ALIAS_DELETED = "ALIAS_DELETED"
    PROFILE_ADDED = "PROFILE_ADDED"
    JOB_FINISHED = "JOB_FINISHED"
    WEBHOOK_TEST = "WEBHOOK_TEST"


class Scope(str, Enum):
    read = "read"
    write = "write"
    worker = "worker"
    admin = "admin"


class Shortfall(str, Enum):
    OVER_LATENCY = "OVER_LATENCY"
    NO_P99 = "NO_P99"
    UNDER_THROUGHPUT = "UNDER_THROUGHPUT"
    UNSTABLE = "UNSTABLE"


class SweepStopReason(str, Enum):
    SATURATED = "SATURATED"
    LATENCY_LIMIT = "LATENCY_LIMIT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    BUDGET = "BUDGET"
    MAX_BATCH = "MAX_BATCH"
    LIST_DONE = "LIST_DONE"
    NOT_BATCHABLE = "NOT_BATCHABLE"
    BUSY = "BUSY"


class Task(str, Enum):
    Image_Classification = "Image_Classification"
    Object_Detection = "Object_Detection"
    Segmentation = "Segmentation"
    Text_Classification = "Text_Classification"
    Token_Classification = "Token_Classification"
    Question_Answering = "Question_Answering"
    Text_Generation = "Text_Generation"
    Speech_Recognition = "Speech_Recognition"
    Regression = "Regression"
    Tabular_Classification = "Tabular_Classification"
    Other = "Other"


class WebhookDeliveryStatus(str, Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class WeightFormat(str, Enum):
    ONNX = "ONNX"
    TORCHSCRIPT = "TORCHSCRIPT"
    TORCH_EXPORT = "TORCH_EXPORT"
    TORCH_PICKLE = "TORCH_PICKLE"
    AOTI_PACKAGE = "AOTI_PACKAGE"
