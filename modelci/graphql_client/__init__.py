from .base_client import HubTransport
from .base_model import BaseModel, Upload
from .cancel_job import CancelJob, CancelJobCancelProfilingJob
from .claim_profiling_job import ClaimProfilingJob, ClaimProfilingJobClaimProfilingJob
from .client import HubOperations
from .compare_models import (
    CompareModels,
    CompareModelsCompareModels,
    CompareModelsCompareModelsModels,
    CompareModelsCompareModelsRows,
    CompareModelsCompareModelsRowsResults,
)
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
from .delete_model_alias import DeleteModelAlias, DeleteModelAliasDeleteModelAlias
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
    Shortfall,
    SweepStopReason,
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
    ProfilingJobSweeps,
    RecommendationOption,
    RecommendationOptionModel,
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
from .get_model import GetModel, GetModelModel
from .get_model_aliases import GetModelAliases, GetModelAliasesModelAliases
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
    ProfileFilterInput,
    ProfileLatencyInput,
    ProfileMemoryInput,
    ProfileThroughputInput,
    RecommendationGoalInput,
    StaticProfileResultInput,
    SweepOutcomeInput,
)
from .model_to_process import (
    ModelToProcess,
    ModelToProcessModel,
    ModelToProcessModelInputs,
    ModelToProcessModelOutputs,
    ModelToProcessModelWeight,
)
from .profile_model import ProfileModel, ProfileModelProfileModel
from .recommend import (
    Recommend,
    RecommendRecommend,
    RecommendRecommendClosest,
    RecommendRecommendNotProfiled,
    RecommendRecommendOptions,
    RecommendRecommendRejected,
)
from .record_profiling_sweep import (
    RecordProfilingSweep,
    RecordProfilingSweepRecordProfilingSweep,
)
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
from .set_model_alias import SetModelAlias, SetModelAliasSetModelAlias
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
    "CompareModels",
    "CompareModelsCompareModels",
    "CompareModelsCompareModelsModels",
    "CompareModelsCompareModelsRows",
    "CompareModelsCompareModelsRowsResults",
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
    "DeleteModelAlias",
    "DeleteModelAliasDeleteModelAlias",
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
    "GetModel",
    "GetModelAliases",
    "GetModelAliasesModelAliases",
    "GetModelModel",
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
    "ProfileFilterInput",
    "ProfileLatencyInput",
    "ProfileMemoryInput",
    "ProfileModel",
    "ProfileModelProfileModel",
    "ProfileThroughputInput",
    "ProfilingJob",
    "ProfilingJobLog",
    "ProfilingJobSweeps",
    "Recommend",
    "RecommendRecommend",
    "RecommendRecommendClosest",
    "RecommendRecommendNotProfiled",
    "RecommendRecommendOptions",
    "RecommendRecommendRejected",
    "RecommendationGoalInput",
    "RecommendationOption",
    "RecommendationOptionModel",
    "RecordProfilingSweep",
    "RecordProfilingSweepRecordProfilingSweep",
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
    "SetModelAlias",
    "SetModelAliasSetModelAlias",
    "Shortfall",
    "StaticProfileResultInput",
    "SweepOutcomeInput",
    "SweepStopReason",
    "Task",
    "UpdateDynamicProfilingResult",
    "UpdateDynamicProfilingResultUpdateDynamicProfilingResult",
    "UpdateModel",
    "UpdateModelUpdateModel",
    "Upload",
    "WeightFormat",
]
