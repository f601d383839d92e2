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
from .create_webhook import (
    CreateWebhook,
    CreateWebhookCreateWebhook,
    CreateWebhookCreateWebhookWebhook,
)
from .delete_dynamic_profiling_result import (
    DeleteDynamicProfilingResult,
    DeleteDynamicProfilingResultDeleteDynamicProfilingResult,
)
from .delete_model import DeleteModel, DeleteModelDeleteModel
from .delete_model_alias import DeleteModelAlias, DeleteModelAliasDeleteModelAlias
from .delete_model_tag import DeleteModelTag, DeleteModelTagDeleteModelTag
from .delete_webhook import DeleteWebhook, DeleteWebhookDeleteWebhook
from .enums import (
    DataType,
    DeviceKind,
    Engine,
    Framework,
    JobKind,
    JobStatus,
    ModelInputFormat,
    ModelStatus,
    RegistryEventType,
    Scope,
    Shortfall,
    SweepStopReason,
    Task,
    WebhookDeliveryStatus,
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
    MLModelParams,
    MLModelProfileResult,
    MLModelProfileResultDynamicResults,
    MLModelProfileResultStaticResult,
    MLModelSource,
    MLModelTags,
    MLModelWeight,
    ProfilingJob,
    ProfilingJobLog,
    ProfilingJobSweeps,
    RecommendationOption,
    RecommendationOptionModel,
    Webhook,
    WebhookDelivery,
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
from .get_webhook_deliveries import (
    GetWebhookDeliveries,
    GetWebhookDeliveriesWebhookDeliveries,
)
from .get_webhooks import GetWebhooks, GetWebhooksWebhooks
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
    MetricConditionInput,
    MetricValueInput,
    ModelInput,
    ModelSourceInput,
    ModelUpdateInput,
    ModelWhereInput,
    NameValueConditionInput,
    NameValueInput,
    ProfileFilterInput,
    ProfileLatencyInput,
    ProfileMemoryInput,
    ProfileThroughputInput,
    RecommendationGoalInput,
    StaticProfileResultInput,
    SweepOutcomeInput,
    TextMatchInput,
    TimeRangeInput,
    VersionRangeInput,
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
from .set_model_tag import SetModelTag, SetModelTagSetModelTag
from .test_webhook import TestWebhook, TestWebhookTestWebhook
from .update_dynamic_profiling_result import (
    UpdateDynamicProfilingResult,
    UpdateDynamicProfilingResultUpdateDynamicProfilingResult,
)
from .update_model import UpdateModel, UpdateModelUpdateModel
from .update_webhook import UpdateWebhook, UpdateWebhookUpdateWebhook

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
    "CreateWebhook",
    "CreateWebhookCreateWebhook",
    "CreateWebhookCreateWebhookWebhook",
    "DataType",
    "DeleteDynamicProfilingResult",
    "DeleteDynamicProfilingResultDeleteDynamicProfilingResult",
    "DeleteModel",
    "DeleteModelAlias",
    "DeleteModelAliasDeleteModelAlias",
    "DeleteModelDeleteModel",
    "DeleteModelTag",
    "DeleteModelTagDeleteModelTag",
    "DeleteWebhook",
    "DeleteWebhookDeleteWebhook",
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
    "GetWebhookDeliveries",
    "GetWebhookDeliveriesWebhookDeliveries",
    "GetWebhooks",
    "GetWebhooksWebhooks",
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
    "MLModelParams",
    "MLModelProfileResult",
    "MLModelProfileResultDynamicResults",
    "MLModelProfileResultStaticResult",
    "MLModelSource",
    "MLModelTags",
    "MLModelWeight",
    "MeasurementInput",
    "MetricConditionInput",
    "MetricValueInput",
    "ModelInput",
    "ModelInputFormat",
    "ModelSourceInput",
    "ModelStatus",
    "ModelToProcess",
    "ModelToProcessModel",
    "ModelToProcessModelInputs",
    "ModelToProcessModelOutputs",
    "ModelToProcessModelWeight",
    "ModelUpdateInput",
    "ModelWhereInput",
    "NameValueConditionInput",
    "NameValueInput",
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
    "RegistryEventType",
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
    "SetModelTag",
    "SetModelTagSetModelTag",
    "Shortfall",
    "StaticProfileResultInput",
    "SweepOutcomeInput",
    "SweepStopReason",
    "Task",
    "TestWebhook",
    "TestWebhookTestWebhook",
    "TextMatchInput",
    "TimeRangeInput",
    "UpdateDynamicProfilingResult",
    "UpdateDynamicProfilingResultUpdateDynamicProfilingResult",
    "UpdateModel",
    "UpdateModelUpdateModel",
    "UpdateWebhook",
    "UpdateWebhookUpdateWebhook",
    "Upload",
    "VersionRangeInput",
    "Webhook",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WeightFormat",
]
