from .base_client import HubTransport
from .base_model import BaseModel, Upload
from .cancel_job import CancelJob, CancelJobCancelProfilingJob
from .claim_profiling_job import ClaimProfilingJob, ClaimProfilingJobClaimProfilingJob
from .client import HubOperations
from .convert_model import ConvertModel, ConvertModelConvertModel
from .create_api_token import (
    CreateApiToken,
    CreateApiTokenCreateApiToken,
    CreateApiTokenCreateApiTokenApiToken,
)
from .delete_dynamic_profiling_result import (
    DeleteDynamicProfilingResult,
    DeleteDynamicProfilingResultDeleteDynamicProfilingResult,
)
from .delete_model import DeleteModel, DeleteModelDeleteModel
from .enums import (
    DataType,
    DeviceKind,
    Engine,
    Framework,
    JobKind,
    JobStatus,
    Metric,
    ModelInputFormat,
    ModelStatus,
    Scope,
    Task,
    WeightFormat,
)
from .finish_profiling_job import (
    FinishProfilingJob,
    FinishProfilingJobFinishProfilingJob,
)
from .fragments import (
    DynamicProfileResult,
    DynamicProfileResultLatency,
    DynamicProfileResultLatencyInferenceLatency,
    DynamicProfileResultLatencyInitializationLatency,
    DynamicProfileResultLatencyPostprocessLatency,
    DynamicProfileResultLatencyPreprocessLatency,
    DynamicProfileResultMeasurement,
    DynamicProfileResultMemory,
    DynamicProfileResultThroughput,
    MLModel,
    MLModelConversion,
    MLModelInputs,
    MLModelMetric,
    MLModelOutputs,
    MLModelProfileResult,
    MLModelProfileResultDynamicResults,
    MLModelProfileResultStaticResult,
    MLModelWeight,
    ProfilingJob,
    ProfilingJobLog,
)
from .get_api_tokens import GetApiTokens, GetApiTokensApiTokens
from .get_by_id import GetById, GetByIdModel
from .get_devices import GetDevices, GetDevicesDevices
from .get_job import GetJob, GetJobProfilingJob
from .get_job_status import GetJobStatus, GetJobStatusProfilingJob
from .get_jobs import (
    GetJobs,
    GetJobsProfilingJobs,
    GetJobsProfilingJobsNodes,
    GetJobsProfilingJobsPageInfo,
)
from .get_lineage import (
    GetLineage,
    GetLineageModel,
    GetLineageModelChildren,
    GetLineageModelChildrenWeight,
)
from .get_models import (
    GetModels,
    GetModelsModels,
    GetModelsModelsNodes,
    GetModelsModelsPageInfo,
)
from .heartbeat_profiling_job import (
    HeartbeatProfilingJob,
    HeartbeatProfilingJobHeartbeatProfilingJob,
)
from .input_types import (
    ConversionCheckInput,
    DeviceInput,
    DynamicProfileResultInput,
    InfoTupleInput,
    IOShapeInput,
    MeasurementInput,
    MetricValueInput,
    ModelInput,
    ModelUpdateInput,
    ProfileLatencyInput,
    ProfileMemoryInput,
    ProfileThroughputInput,
    StaticProfileResultInput,
)
from .model_to_process import (
    ModelToProcess,
    ModelToProcessModel,
    ModelToProcessModelInputs,
    ModelToProcessModelOutputs,
    ModelToProcessModelWeight,
)
from .profile_model import ProfileModel, ProfileModelProfileModel
from .register_converted_model import (
    RegisterConvertedModel,
    RegisterConvertedModelRegisterConvertedModel,
)
from .register_dynamic_profiling_result import (
    RegisterDynamicProfilingResult,
    RegisterDynamicProfilingResultRegisterDynamicProfilingResult,
)
from .register_model import RegisterModel, RegisterModelRegisterModel
from .register_static_profiling_result import (
    RegisterStaticProfilingResult,
    RegisterStaticProfilingResultRegisterStaticProfilingResult,
)
from .release_profiling_job import (
    ReleaseProfilingJob,
    ReleaseProfilingJobReleaseProfilingJob,
)
from .report_dynamic_profiling_result import (
    ReportDynamicProfilingResult,
    ReportDynamicProfilingResultUpdateDynamicProfilingResult,
)
from .report_static_profiling_result import (
    ReportStaticProfilingResult,
    ReportStaticProfilingResultRegisterStaticProfilingResult,
)
from .revoke_api_token import RevokeApiToken, RevokeApiTokenRevokeApiToken
from .update_dynamic_profiling_result import (
    UpdateDynamicProfilingResult,
    UpdateDynamicProfilingResultUpdateDynamicProfilingResult,
)
from .update_model import UpdateModel, UpdateModelUpdateModel

__all__ = [
    "BaseModel",
    "CancelJob",
    "CancelJobCancelProfilingJob",
    "ClaimProfilingJob",
    "ClaimProfilingJobClaimProfilingJob",
    "ConversionCheckInput",
    "ConvertModel",
    "ConvertModelConvertModel",
    "CreateApiToken",
    "CreateApiTokenCreateApiToken",
    "CreateApiTokenCreateApiTokenApiToken",
    "DataType",
    "DeleteDynamicProfilingResult",
    "DeleteDynamicProfilingResultDeleteDynamicProfilingResult",
    "DeleteModel",
    "DeleteModelDeleteModel",
    "DeviceInput",
    "DeviceKind",
    "DynamicProfileResult",
    "DynamicProfileResultInput",
    "DynamicProfileResultLatency",
    "DynamicProfileResultLatencyInferenceLatency",
    "DynamicProfileResultLatencyInitializationLatency",
    "DynamicProfileResultLatencyPostprocessLatency",
    "DynamicProfileResultLatencyPreprocessLatency",
    "DynamicProfileResultMeasurement",
    "DynamicProfileResultMemory",
    "DynamicProfileResultThroughput",
    "Engine",
    "FinishProfilingJob",
    "FinishProfilingJobFinishProfilingJob",
    "Framework",
    "GetApiTokens",
    "GetApiTokensApiTokens",
    "GetById",
    "GetByIdModel",
    "GetDevices",
    "GetDevicesDevices",
    "GetJob",
    "GetJobProfilingJob",
    "GetJobStatus",
    "GetJobStatusProfilingJob",
    "GetJobs",
    "GetJobsProfilingJobs",
    "GetJobsProfilingJobsNodes",
    "GetJobsProfilingJobsPageInfo",
    "GetLineage",
    "GetLineageModel",
    "GetLineageModelChildren",
    "GetLineageModelChildrenWeight",
    "GetModels",
    "GetModelsModels",
    "GetModelsModelsNodes",
    "GetModelsModelsPageInfo",
    "HeartbeatProfilingJob",
    "HeartbeatProfilingJobHeartbeatProfilingJob",
    "HubOperations",
    "HubTransport",
    "IOShapeInput",
    "InfoTupleInput",
    "JobKind",
    "JobStatus",
    "MLModel",
    "MLModelConversion",
    "MLModelInputs",
    "MLModelMetric",
    "MLModelOutputs",
    "MLModelProfileResult",
    "MLModelProfileResultDynamicResults",
    "MLModelProfileResultStaticResult",
    "MLModelWeight",
    "MeasurementInput",
    "Metric",
    "MetricValueInput",
    "ModelInput",
    "ModelInputFormat",
    "ModelStatus",
    "ModelToProcess",
    "ModelToProcessModel",
    "ModelToProcessModelInputs",
    "ModelToProcessModelOutputs",
    "ModelToProcessModelWeight",
    "ModelUpdateInput",
    "ProfileLatencyInput",
    "ProfileMemoryInput",
    "ProfileModel",
    "ProfileModelProfileModel",
    "ProfileThroughputInput",
    "ProfilingJob",
    "ProfilingJobLog",
    "RegisterConvertedModel",
    "RegisterConvertedModelRegisterConvertedModel",
    "RegisterDynamicProfilingResult",
    "RegisterDynamicProfilingResultRegisterDynamicProfilingResult",
    "RegisterModel",
    "RegisterModelRegisterModel",
    "RegisterStaticProfilingResult",
    "RegisterStaticProfilingResultRegisterStaticProfilingResult",
    "ReleaseProfilingJob",
    "ReleaseProfilingJobReleaseProfilingJob",
    "ReportDynamicProfilingResult",
    "ReportDynamicProfilingResultUpdateDynamicProfilingResult",
    "ReportStaticProfilingResult",
    "ReportStaticProfilingResultRegisterStaticProfilingResult",
    "RevokeApiToken",
    "RevokeApiTokenRevokeApiToken",
    "Scope",
    "StaticProfileResultInput",
    "Task",
    "UpdateDynamicProfilingResult",
    "UpdateDynamicProfilingResultUpdateDynamicProfilingResult",
    "UpdateModel",
    "UpdateModelUpdateModel",
    "Upload",
    "WeightFormat",
]
