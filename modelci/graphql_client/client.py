from typing import Any, Optional, Union

from .base_client import HubTransport
from .base_model import UNSET, UnsetType, Upload
from .cancel_job import CancelJob
from .claim_profiling_job import ClaimProfilingJob
from .compare_models import CompareModels
from .convert_model import ConvertModel
from .create_api_token import CreateApiToken
from .create_webhook import CreateWebhook
from .delete_dynamic_profiling_result import DeleteDynamicProfilingResult
from .delete_model import DeleteModel
from .delete_model_alias import DeleteModelAlias
from .delete_model_tag import DeleteModelTag
from .delete_webhook import DeleteWebhook
from .enums import (
    Engine,
    Framework,
    JobKind,
    JobStatus,
    ModelStatus,
    RegistryEventType,
    Scope,
    Task,
    WebhookDeliveryStatus,
)
from .finish_profiling_job import FinishProfilingJob
from .get_api_tokens import GetApiTokens
from .get_by_id import GetById
from .get_devices import GetDevices
from .get_job import GetJob
from .get_job_status import GetJobStatus
from .get_jobs import GetJobs
from .get_lineage import GetLineage
from .get_model import GetModel
from .get_model_aliases import GetModelAliases
from .get_models import GetModels
from .get_webhook_deliveries import GetWebhookDeliveries
from .get_webhooks import GetWebhooks
from .heartbeat_profiling_job import HeartbeatProfilingJob
from .input_types import (
    ConversionCheckInput,
    DeviceInput,
    DynamicProfileResultInput,
    ModelInput,
    ModelUpdateInput,
    ModelWhereInput,
    ProfileFilterInput,
    RecommendationGoalInput,
    StaticProfileResultInput,
    SweepOutcomeInput,
)
from .model_to_process import ModelToProcess
from .profile_model import ProfileModel
from .recommend import Recommend
from .record_profiling_sweep import RecordProfilingSweep
from .register_converted_model import RegisterConvertedModel
from .register_dynamic_profiling_result import RegisterDynamicProfilingResult
from .register_model import RegisterModel
from .register_static_profiling_result import RegisterStaticProfilingResult
from .release_profiling_job import ReleaseProfilingJob
from .report_dynamic_profiling_result import ReportDynamicProfilingResult
from .report_static_profiling_result import ReportStaticProfilingResult
from .revoke_api_token import RevokeApiToken
from .set_model_alias import SetModelAlias
from .set_model_tag import SetModelTag
from .test_webhook import TestWebhook
from .update_dynamic_profiling_result import UpdateDynamicProfilingResult
from .update_model import UpdateModel
from .update_webhook import UpdateWebhook


def gql(q: str) -> str:
    return q


class HubOperations(HubTransport):
    def recommend(
        self,
        task: Task,
        first: int,
        architecture: Union[Optional[str], UnsetType] = UNSET,
        dataset: Union[Optional[str], UnsetType] = UNSET,
        goal: Union[Optional[RecommendationGoalInput], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> Recommend:
        query = gql("""
            query recommend($task: Task!, $architecture: String, $dataset: String, $goal: RecommendationGoalInput, $first: Int! = 10) {
              recommend(
                task: $task
                architecture: $architecture
                dataset: $dataset
                goal: $goal
                first: $first
              ) {
                options {
                  ...RecommendationOption
                }
                rejected {
                  ...RecommendationOption
                }
                closest {
                  ...RecommendationOption
                }
                notProfiled {
                  id
                  architecture
                  framework
                  engine
                  version
                  parentModelId
                }
                optionsFound
                rejectedFound
                notProfiledFound
                candidates
                truncated
              }
            }

            fragment RecommendationOption on RecommendationOption {
              model {
                id
                architecture
                framework
                engine
                version
                dataset
                parentModelId
              }
              deviceId
              deviceName
              ip
              batch
              p50
              p99
              throughput
              stable
              onFrontier
              shortfalls
            }
            """)
        variables: dict[str, object] = {
            "task": task,
            "architecture": architecture,
            "dataset": dataset,
            "goal": goal,
            "first": first,
        }
        response = self.execute(
            query=query, operation_name="recommend", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Recommend.model_validate(data)

    def compare_models(self, ids: list[str], **kwargs: Any) -> CompareModels:
        query = gql("""
            query compareModels($ids: [ID!]!) {
              compareModels(ids: $ids) {
                models {
                  ...MLModel
                }
                rows {
                  deviceId
                  deviceName
                  batch
                  results {
                    ...DynamicProfileResult
                  }
                }
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {"ids": ids}
        response = self.execute(
            query=query, operation_name="compareModels", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return CompareModels.model_validate(data)

    def get_model(
        self,
        id: Union[Optional[str], UnsetType] = UNSET,
        alias: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> GetModel:
        query = gql("""
            query getModel($id: ID, $alias: String) {
              model(id: $id, alias: $alias) {
                ...MLModel
                aliases
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id, "alias": alias}
        response = self.execute(
            query=query, operation_name="getModel", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetModel.model_validate(data)

    def get_model_aliases(self, **kwargs: Any) -> GetModelAliases:
        query = gql("""
            query getModelAliases {
              modelAliases {
                alias
                modelId
                updateTime
              }
            }
            """)
        variables: dict[str, object] = {}
        response = self.execute(
            query=query, operation_name="getModelAliases", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetModelAliases.model_validate(data)

    def set_model_alias(
        self, alias: str, model_id: str, **kwargs: Any
    ) -> SetModelAlias:
        query = gql("""
            mutation setModelAlias($alias: String!, $modelId: ID!) {
              setModelAlias(alias: $alias, modelId: $modelId) {
                alias
                modelId
                updateTime
              }
            }
            """)
        variables: dict[str, object] = {"alias": alias, "modelId": model_id}
        response = self.execute(
            query=query, operation_name="setModelAlias", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return SetModelAlias.model_validate(data)

    def delete_model_alias(self, alias: str, **kwargs: Any) -> DeleteModelAlias:
        query = gql("""
            mutation deleteModelAlias($alias: String!) {
              deleteModelAlias(alias: $alias) {
                alias
                modelId
                updateTime
              }
            }
            """)
        variables: dict[str, object] = {"alias": alias}
        response = self.execute(
            query=query,
            operation_name="deleteModelAlias",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return DeleteModelAlias.model_validate(data)

    def profile_model(
        self,
        model_id: str,
        batch_sizes: Union[Optional[list[int]], UnsetType] = UNSET,
        devices: Union[Optional[list[str]], UnsetType] = UNSET,
        budget_seconds: Union[Optional[float], UnsetType] = UNSET,
        max_p99_latency: Union[Optional[float], UnsetType] = UNSET,
        max_batch: Union[Optional[int], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> ProfileModel:
        query = gql("""
            mutation profileModel($modelId: ID!, $batchSizes: [Int!], $devices: [String!], $budgetSeconds: Float, $maxP99Latency: Float, $maxBatch: Int) {
              profileModel(
                modelId: $modelId
                batchSizes: $batchSizes
                devices: $devices
                budgetSeconds: $budgetSeconds
                maxP99Latency: $maxP99Latency
                maxBatch: $maxBatch
              ) {
                ...ProfilingJob
              }
            }

            fragment ProfilingJob on ProfilingJob {
              id
              modelId
              kind
              status
              batchSizes
              devices
              targets
              profileVariants
              budgetSeconds
              maxP99Latency
              maxBatch
              sweeps {
                deviceId
                batches
                reasonCode
                reason
              }
              progress
              error
              worker
              attempts
              maxAttempts
              leaseExpiresAt
              createTime
              startTime
              endTime
              updateTime
              log {
                time
                message
              }
            }
            """)
        variables: dict[str, object] = {
            "modelId": model_id,
            "batchSizes": batch_sizes,
            "devices": devices,
            "budgetSeconds": budget_seconds,
            "maxP99Latency": max_p99_latency,
            "maxBatch": max_batch,
        }
        response = self.execute(
            query=query, operation_name="profileModel", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return ProfileModel.model_validate(data)

    def convert_model(
        self,
        model_id: str,
        profile: bool,
        targets: Union[Optional[list[Engine]], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> ConvertModel:
        query = gql("""
            mutation convertModel($modelId: ID!, $targets: [Engine!], $profile: Boolean! = false) {
              convertModel(modelId: $modelId, targets: $targets, profile: $profile) {
                ...ProfilingJob
              }
            }

            fragment ProfilingJob on ProfilingJob {
              id
              modelId
              kind
              status
              batchSizes
              devices
              targets
              profileVariants
              budgetSeconds
              maxP99Latency
              maxBatch
              sweeps {
                deviceId
                batches
                reasonCode
                reason
              }
              progress
              error
              worker
              attempts
              maxAttempts
              leaseExpiresAt
              createTime
              startTime
              endTime
              updateTime
              log {
                time
                message
              }
            }
            """)
        variables: dict[str, object] = {
            "modelId": model_id,
            "targets": targets,
            "profile": profile,
        }
        response = self.execute(
            query=query, operation_name="convertModel", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return ConvertModel.model_validate(data)

    def get_job(self, id: str, **kwargs: Any) -> GetJob:
        query = gql("""
            query getJob($id: ID!) {
              profilingJob(id: $id) {
                ...ProfilingJob
              }
            }

            fragment ProfilingJob on ProfilingJob {
              id
              modelId
              kind
              status
              batchSizes
              devices
              targets
              profileVariants
              budgetSeconds
              maxP99Latency
              maxBatch
              sweeps {
                deviceId
                batches
                reasonCode
                reason
              }
              progress
              error
              worker
              attempts
              maxAttempts
              leaseExpiresAt
              createTime
              startTime
              endTime
              updateTime
              log {
                time
                message
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = self.execute(
            query=query, operation_name="getJob", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetJob.model_validate(data)

    def get_jobs(
        self,
        first: int,
        model_id: Union[Optional[str], UnsetType] = UNSET,
        status: Union[Optional[JobStatus], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> GetJobs:
        query = gql("""
            query getJobs($modelId: ID, $status: JobStatus, $first: Int!, $after: String) {
              profilingJobs(modelId: $modelId, status: $status, first: $first, after: $after) {
                nodes {
                  ...ProfilingJob
                }
                pageInfo {
                  hasNextPage
                  endCursor
                }
              }
            }

            fragment ProfilingJob on ProfilingJob {
              id
              modelId
              kind
              status
              batchSizes
              devices
              targets
              profileVariants
              budgetSeconds
              maxP99Latency
              maxBatch
              sweeps {
                deviceId
                batches
                reasonCode
                reason
              }
              progress
              error
              worker
              attempts
              maxAttempts
              leaseExpiresAt
              createTime
              startTime
              endTime
              updateTime
              log {
                time
                message
              }
            }
            """)
        variables: dict[str, object] = {
            "modelId": model_id,
            "status": status,
            "first": first,
            "after": after,
        }
        response = self.execute(
            query=query, operation_name="getJobs", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetJobs.model_validate(data)

    def cancel_job(self, id: str, **kwargs: Any) -> CancelJob:
        query = gql("""
            mutation cancelJob($id: ID!) {
              cancelProfilingJob(id: $id) {
                ...ProfilingJob
              }
            }

            fragment ProfilingJob on ProfilingJob {
              id
              modelId
              kind
              status
              batchSizes
              devices
              targets
              profileVariants
              budgetSeconds
              maxP99Latency
              maxBatch
              sweeps {
                deviceId
                batches
                reasonCode
                reason
              }
              progress
              error
              worker
              attempts
              maxAttempts
              leaseExpiresAt
              createTime
              startTime
              endTime
              updateTime
              log {
                time
                message
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = self.execute(
            query=query, operation_name="cancelJob", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return CancelJob.model_validate(data)

    def register_model(
        self,
        input: ModelInput,
        weight: Upload,
        convert: bool,
        profile: bool,
        **kwargs: Any,
    ) -> RegisterModel:
        query = gql("""
            mutation registerModel($input: ModelInput!, $weight: Upload!, $convert: Boolean! = true, $profile: Boolean! = false) {
              registerModel(
                input: $input
                weight: $weight
                convert: $convert
                profile: $profile
              ) {
                ...MLModel
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {
            "input": input,
            "weight": weight,
            "convert": convert,
            "profile": profile,
        }
        response = self.execute(
            query=query, operation_name="registerModel", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return RegisterModel.model_validate(data)

    def get_by_id(self, id: str, **kwargs: Any) -> GetById:
        query = gql("""
            query getById($id: ID!) {
              model(id: $id) {
                ...MLModel
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = self.execute(
            query=query, operation_name="getById", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetById.model_validate(data)

    def get_models(
        self,
        first: int,
        architecture: Union[Optional[str], UnsetType] = UNSET,
        task: Union[Optional[Task], UnsetType] = UNSET,
        framework: Union[Optional[Framework], UnsetType] = UNSET,
        engine: Union[Optional[Engine], UnsetType] = UNSET,
        version: Union[Optional[int], UnsetType] = UNSET,
        dataset: Union[Optional[str], UnsetType] = UNSET,
        status: Union[Optional[ModelStatus], UnsetType] = UNSET,
        profile: Union[Optional[ProfileFilterInput], UnsetType] = UNSET,
        where: Union[Optional[ModelWhereInput], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> GetModels:
        query = gql("""
            query getModels($architecture: String, $task: Task, $framework: Framework, $engine: Engine, $version: Int, $dataset: String, $status: ModelStatus, $profile: ProfileFilterInput, $where: ModelWhereInput, $first: Int!, $after: String) {
              models(
                architecture: $architecture
                task: $task
                framework: $framework
                engine: $engine
                version: $version
                dataset: $dataset
                status: $status
                profile: $profile
                where: $where
                first: $first
                after: $after
              ) {
                nodes {
                  ...MLModel
                }
                pageInfo {
                  hasNextPage
                  endCursor
                }
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {
            "architecture": architecture,
            "task": task,
            "framework": framework,
            "engine": engine,
            "version": version,
            "dataset": dataset,
            "status": status,
            "profile": profile,
            "where": where,
            "first": first,
            "after": after,
        }
        response = self.execute(
            query=query, operation_name="getModels", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetModels.model_validate(data)

    def get_lineage(self, id: str, **kwargs: Any) -> GetLineage:
        query = gql("""
            query getLineage($id: ID!) {
              model(id: $id) {
                id
                parentModelId
                children {
                  id
                  engine
                  modelStatus
                  weight {
                    format
                  }
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = self.execute(
            query=query, operation_name="getLineage", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetLineage.model_validate(data)

    def update_model(
        self,
        id: str,
        input: ModelUpdateInput,
        weight: Union[Optional[Upload], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> UpdateModel:
        query = gql("""
            mutation updateModel($id: ID!, $input: ModelUpdateInput!, $weight: Upload) {
              updateModel(id: $id, input: $input, weight: $weight) {
                ...MLModel
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id, "input": input, "weight": weight}
        response = self.execute(
            query=query, operation_name="updateModel", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return UpdateModel.model_validate(data)

    def set_model_tag(
        self, id: str, name: str, value: str, **kwargs: Any
    ) -> SetModelTag:
        query = gql("""
            mutation setModelTag($id: ID!, $name: String!, $value: String!) {
              setModelTag(id: $id, name: $name, value: $value) {
                ...MLModel
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id, "name": name, "value": value}
        response = self.execute(
            query=query, operation_name="setModelTag", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return SetModelTag.model_validate(data)

    def delete_model_tag(self, id: str, name: str, **kwargs: Any) -> DeleteModelTag:
        query = gql("""
            mutation deleteModelTag($id: ID!, $name: String!) {
              deleteModelTag(id: $id, name: $name) {
                ...MLModel
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id, "name": name}
        response = self.execute(
            query=query, operation_name="deleteModelTag", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return DeleteModelTag.model_validate(data)

    def delete_model(self, id: str, cascade: bool, **kwargs: Any) -> DeleteModel:
        query = gql("""
            mutation deleteModel($id: ID!, $cascade: Boolean! = false) {
              deleteModel(id: $id, cascade: $cascade) {
                ...MLModel
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id, "cascade": cascade}
        response = self.execute(
            query=query, operation_name="deleteModel", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return DeleteModel.model_validate(data)

    def register_static_profiling_result(
        self, model_id: str, result: StaticProfileResultInput, **kwargs: Any
    ) -> RegisterStaticProfilingResult:
        query = gql("""
            mutation registerStaticProfilingResult($modelId: ID!, $result: StaticProfileResultInput!) {
              registerStaticProfilingResult(modelId: $modelId, result: $result) {
                ...MLModel
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {"modelId": model_id, "result": result}
        response = self.execute(
            query=query,
            operation_name="registerStaticProfilingResult",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return RegisterStaticProfilingResult.model_validate(data)

    def register_dynamic_profiling_result(
        self, model_id: str, result: DynamicProfileResultInput, **kwargs: Any
    ) -> RegisterDynamicProfilingResult:
        query = gql("""
            mutation registerDynamicProfilingResult($modelId: ID!, $result: DynamicProfileResultInput!) {
              registerDynamicProfilingResult(modelId: $modelId, result: $result) {
                ...MLModel
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {"modelId": model_id, "result": result}
        response = self.execute(
            query=query,
            operation_name="registerDynamicProfilingResult",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return RegisterDynamicProfilingResult.model_validate(data)

    def update_dynamic_profiling_result(
        self,
        model_id: str,
        result: DynamicProfileResultInput,
        force_insert: bool,
        **kwargs: Any,
    ) -> UpdateDynamicProfilingResult:
        query = gql("""
            mutation updateDynamicProfilingResult($modelId: ID!, $result: DynamicProfileResultInput!, $forceInsert: Boolean! = false) {
              updateDynamicProfilingResult(
                modelId: $modelId
                result: $result
                forceInsert: $forceInsert
              ) {
                ...MLModel
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {
            "modelId": model_id,
            "result": result,
            "forceInsert": force_insert,
        }
        response = self.execute(
            query=query,
            operation_name="updateDynamicProfilingResult",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return UpdateDynamicProfilingResult.model_validate(data)

    def delete_dynamic_profiling_result(
        self,
        model_id: str,
        ip: str,
        device_id: str,
        batch: Union[Optional[int], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> DeleteDynamicProfilingResult:
        query = gql("""
            mutation deleteDynamicProfilingResult($modelId: ID!, $ip: String!, $deviceId: String!, $batch: Int) {
              deleteDynamicProfilingResult(
                modelId: $modelId
                ip: $ip
                deviceId: $deviceId
                batch: $batch
              ) {
                ...MLModel
              }
            }

            fragment DynamicProfileResult on DynamicProfileResult {
              ip
              deviceId
              deviceName
              batch
              createTime
              memory {
                totalMemory
                memoryUsage
                utilization
              }
              latency {
                initializationLatency {
                  avg
                  p50
                  p95
                  p99
                }
                preprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
                inferenceLatency {
                  avg
                  p50
                  p95
                  p99
                }
                postprocessLatency {
                  avg
                  p50
                  p95
                  p99
                }
              }
              throughput {
                batchFormationThroughput
                preprocessThroughput
                inferenceThroughput
                postprocessThroughput
              }
              measurement {
                runtime
                intraOpThreads
                samples
                windows
                stable
                iqrOverMedian
                percentileMethod
                sweepStop
                busyFraction
                contention
                p99Missing
                attempts
              }
            }

            fragment MLModel on MLModel {
              id
              architecture
              framework
              engine
              version
              dataset
              task
              creator
              modelStatus
              parentModelId
              createTime
              updateTime
              createdBy
              metric {
                name
                value
              }
              params {
                name
                value
              }
              tags {
                name
                value
              }
              description
              source {
                uri
                runId
              }
              inputs {
                name
                shape
                dtype
                format
              }
              outputs {
                name
                shape
                dtype
                format
              }
              weight {
                filename
                size
                sha256
                contentType
                format
              }
              conversion {
                sourceEngine
                batchSizes
                maxAbsDiff
                maxRelDiff
                tolerance
              }
              profileResult {
                staticResult {
                  parameters
                  flops
                  memory
                  mread
                  mwrite
                  mrw
                  macs
                  uncountedOperators
                  method
                }
                dynamicResults {
                  ...DynamicProfileResult
                }
              }
            }
            """)
        variables: dict[str, object] = {
            "modelId": model_id,
            "ip": ip,
            "deviceId": device_id,
            "batch": batch,
        }
        response = self.execute(
            query=query,
            operation_name="deleteDynamicProfilingResult",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return DeleteDynamicProfilingResult.model_validate(data)

    def create_api_token(
        self, name: str, scopes: list[Scope], **kwargs: Any
    ) -> CreateApiToken:
        query = gql("""
            mutation createApiToken($name: String!, $scopes: [Scope!]!) {
              createApiToken(name: $name, scopes: $scopes) {
                token
                apiToken {
                  id
                  name
                  scopes
                  createTime
                  lastUsed
                  revoked
                }
              }
            }
            """)
        variables: dict[str, object] = {"name": name, "scopes": scopes}
        response = self.execute(
            query=query, operation_name="createApiToken", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return CreateApiToken.model_validate(data)

    def get_api_tokens(self, **kwargs: Any) -> GetApiTokens:
        query = gql("""
            query getApiTokens {
              apiTokens {
                id
                name
                scopes
                createTime
                lastUsed
                revoked
              }
            }
            """)
        variables: dict[str, object] = {}
        response = self.execute(
            query=query, operation_name="getApiTokens", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetApiTokens.model_validate(data)

    def revoke_api_token(self, id_or_name: str, **kwargs: Any) -> RevokeApiToken:
        query = gql("""
            mutation revokeApiToken($idOrName: String!) {
              revokeApiToken(idOrName: $idOrName) {
                id
                name
                scopes
                createTime
                lastUsed
                revoked
              }
            }
            """)
        variables: dict[str, object] = {"idOrName": id_or_name}
        response = self.execute(
            query=query, operation_name="revokeApiToken", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return RevokeApiToken.model_validate(data)

    def get_devices(self, **kwargs: Any) -> GetDevices:
        query = gql("""
            query getDevices {
              devices {
                host
                ip
                deviceId
                name
                kind
                totalMemory
                worker
                lastSeen
              }
            }
            """)
        variables: dict[str, object] = {}
        response = self.execute(
            query=query, operation_name="getDevices", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetDevices.model_validate(data)

    def create_webhook(
        self,
        url: str,
        events: list[RegistryEventType],
        secret: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> CreateWebhook:
        query = gql("""
            mutation createWebhook($url: String!, $events: [RegistryEventType!]!, $secret: String) {
              createWebhook(url: $url, events: $events, secret: $secret) {
                secret
                webhook {
                  ...Webhook
                }
              }
            }

            fragment Webhook on Webhook {
              id
              url
              events
              active
              createdBy
              createTime
              updateTime
            }
            """)
        variables: dict[str, object] = {"url": url, "events": events, "secret": secret}
        response = self.execute(
            query=query, operation_name="createWebhook", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return CreateWebhook.model_validate(data)

    def update_webhook(
        self,
        id: str,
        url: Union[Optional[str], UnsetType] = UNSET,
        events: Union[Optional[list[RegistryEventType]], UnsetType] = UNSET,
        active: Union[Optional[bool], UnsetType] = UNSET,
        secret: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> UpdateWebhook:
        query = gql("""
            mutation updateWebhook($id: ID!, $url: String, $events: [RegistryEventType!], $active: Boolean, $secret: String) {
              updateWebhook(
                id: $id
                url: $url
                events: $events
                active: $active
                secret: $secret
              ) {
                ...Webhook
              }
            }

            fragment Webhook on Webhook {
              id
              url
              events
              active
              createdBy
              createTime
              updateTime
            }
            """)
        variables: dict[str, object] = {
            "id": id,
            "url": url,
            "events": events,
            "active": active,
            "secret": secret,
        }
        response = self.execute(
            query=query, operation_name="updateWebhook", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return UpdateWebhook.model_validate(data)

    def delete_webhook(self, id: str, **kwargs: Any) -> DeleteWebhook:
        query = gql("""
            mutation deleteWebhook($id: ID!) {
              deleteWebhook(id: $id) {
                ...Webhook
              }
            }

            fragment Webhook on Webhook {
              id
              url
              events
              active
              createdBy
              createTime
              updateTime
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = self.execute(
            query=query, operation_name="deleteWebhook", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return DeleteWebhook.model_validate(data)

    def test_webhook(self, id: str, **kwargs: Any) -> TestWebhook:
        query = gql("""
            mutation testWebhook($id: ID!) {
              testWebhook(id: $id) {
                ...WebhookDelivery
              }
            }

            fragment WebhookDelivery on WebhookDelivery {
              id
              webhookId
              eventId
              eventType
              status
              attempts
              maxAttempts
              responseCode
              error
              createTime
              lastAttemptTime
              nextAttemptTime
              deliveredTime
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = self.execute(
            query=query, operation_name="testWebhook", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return TestWebhook.model_validate(data)

    def get_webhooks(self, **kwargs: Any) -> GetWebhooks:
        query = gql("""
            query getWebhooks {
              webhooks {
                ...Webhook
              }
            }

            fragment Webhook on Webhook {
              id
              url
              events
              active
              createdBy
              createTime
              updateTime
            }
            """)
        variables: dict[str, object] = {}
        response = self.execute(
            query=query, operation_name="getWebhooks", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetWebhooks.model_validate(data)

    def get_webhook_deliveries(
        self,
        webhook_id: str,
        first: int,
        status: Union[Optional[WebhookDeliveryStatus], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> GetWebhookDeliveries:
        query = gql("""
            query getWebhookDeliveries($webhookId: ID!, $status: WebhookDeliveryStatus, $first: Int! = 50) {
              webhookDeliveries(webhookId: $webhookId, status: $status, first: $first) {
                ...WebhookDelivery
              }
            }

            fragment WebhookDelivery on WebhookDelivery {
              id
              webhookId
              eventId
              eventType
              status
              attempts
              maxAttempts
              responseCode
              error
              createTime
              lastAttemptTime
              nextAttemptTime
              deliveredTime
            }
            """)
        variables: dict[str, object] = {
            "webhookId": webhook_id,
            "status": status,
            "first": first,
        }
        response = self.execute(
            query=query,
            operation_name="getWebhookDeliveries",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return GetWebhookDeliveries.model_validate(data)

    def claim_profiling_job(
        self,
        worker: str,
        devices: list[DeviceInput],
        lease_seconds: float,
        kinds: Union[Optional[list[JobKind]], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> ClaimProfilingJob:
        query = gql("""
            mutation claimProfilingJob($worker: String!, $devices: [DeviceInput!]!, $leaseSeconds: Float!, $kinds: [JobKind!]) {
              claimProfilingJob(
                worker: $worker
                devices: $devices
                leaseSeconds: $leaseSeconds
                kinds: $kinds
              ) {
                id
                modelId
                kind
                batchSizes
                devices
                targets
                profileVariants
                budgetSeconds
                maxP99Latency
                maxBatch
                attempts
              }
            }
            """)
        variables: dict[str, object] = {
            "worker": worker,
            "devices": devices,
            "leaseSeconds": lease_seconds,
            "kinds": kinds,
        }
        response = self.execute(
            query=query,
            operation_name="claimProfilingJob",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return ClaimProfilingJob.model_validate(data)

    def record_profiling_sweep(
        self, id: str, worker: str, sweep: SweepOutcomeInput, **kwargs: Any
    ) -> RecordProfilingSweep:
        query = gql("""
            mutation recordProfilingSweep($id: ID!, $worker: String!, $sweep: SweepOutcomeInput!) {
              recordProfilingSweep(id: $id, worker: $worker, sweep: $sweep) {
                status
              }
            }
            """)
        variables: dict[str, object] = {"id": id, "worker": worker, "sweep": sweep}
        response = self.execute(
            query=query,
            operation_name="recordProfilingSweep",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return RecordProfilingSweep.model_validate(data)

    def heartbeat_profiling_job(
        self,
        id: str,
        worker: str,
        progress: float,
        lease_seconds: float,
        message: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> HeartbeatProfilingJob:
        query = gql("""
            mutation heartbeatProfilingJob($id: ID!, $worker: String!, $progress: Float!, $message: String, $leaseSeconds: Float!) {
              heartbeatProfilingJob(
                id: $id
                worker: $worker
                progress: $progress
                message: $message
                leaseSeconds: $leaseSeconds
              ) {
                status
              }
            }
            """)
        variables: dict[str, object] = {
            "id": id,
            "worker": worker,
            "progress": progress,
            "message": message,
            "leaseSeconds": lease_seconds,
        }
        response = self.execute(
            query=query,
            operation_name="heartbeatProfilingJob",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return HeartbeatProfilingJob.model_validate(data)

    def finish_profiling_job(
        self,
        id: str,
        worker: str,
        retryable: bool,
        error: Union[Optional[str], UnsetType] = UNSET,
        message: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> FinishProfilingJob:
        query = gql("""
            mutation finishProfilingJob($id: ID!, $worker: String!, $error: String, $message: String, $retryable: Boolean!) {
              finishProfilingJob(
                id: $id
                worker: $worker
                error: $error
                message: $message
                retryable: $retryable
              ) {
                status
              }
            }
            """)
        variables: dict[str, object] = {
            "id": id,
            "worker": worker,
            "error": error,
            "message": message,
            "retryable": retryable,
        }
        response = self.execute(
            query=query,
            operation_name="finishProfilingJob",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return FinishProfilingJob.model_validate(data)

    def release_profiling_job(
        self, id: str, worker: str, reason: str, **kwargs: Any
    ) -> ReleaseProfilingJob:
        query = gql("""
            mutation releaseProfilingJob($id: ID!, $worker: String!, $reason: String!) {
              releaseProfilingJob(id: $id, worker: $worker, reason: $reason) {
                status
              }
            }
            """)
        variables: dict[str, object] = {"id": id, "worker": worker, "reason": reason}
        response = self.execute(
            query=query,
            operation_name="releaseProfilingJob",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return ReleaseProfilingJob.model_validate(data)

    def get_job_status(self, id: str, **kwargs: Any) -> GetJobStatus:
        query = gql("""
            query getJobStatus($id: ID!) {
              profilingJob(id: $id) {
                status
                worker
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = self.execute(
            query=query, operation_name="getJobStatus", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetJobStatus.model_validate(data)

    def model_to_process(self, id: str, **kwargs: Any) -> ModelToProcess:
        query = gql("""
            query modelToProcess($id: ID!) {
              model(id: $id) {
                id
                engine
                inputs {
                  name
                  shape
                  dtype
                  format
                }
                outputs {
                  name
                }
                weight {
                  format
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = self.execute(
            query=query, operation_name="modelToProcess", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return ModelToProcess.model_validate(data)

    def report_static_profiling_result(
        self,
        model_id: str,
        result: StaticProfileResultInput,
        job_id: str,
        worker: str,
        **kwargs: Any,
    ) -> ReportStaticProfilingResult:
        query = gql("""
            mutation reportStaticProfilingResult($modelId: ID!, $result: StaticProfileResultInput!, $jobId: ID!, $worker: String!) {
              registerStaticProfilingResult(
                modelId: $modelId
                result: $result
                jobId: $jobId
                worker: $worker
              ) {
                id
              }
            }
            """)
        variables: dict[str, object] = {
            "modelId": model_id,
            "result": result,
            "jobId": job_id,
            "worker": worker,
        }
        response = self.execute(
            query=query,
            operation_name="reportStaticProfilingResult",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return ReportStaticProfilingResult.model_validate(data)

    def report_dynamic_profiling_result(
        self,
        model_id: str,
        result: DynamicProfileResultInput,
        job_id: str,
        worker: str,
        **kwargs: Any,
    ) -> ReportDynamicProfilingResult:
        query = gql("""
            mutation reportDynamicProfilingResult($modelId: ID!, $result: DynamicProfileResultInput!, $jobId: ID!, $worker: String!) {
              updateDynamicProfilingResult(
                modelId: $modelId
                result: $result
                forceInsert: true
                jobId: $jobId
                worker: $worker
              ) {
                id
              }
            }
            """)
        variables: dict[str, object] = {
            "modelId": model_id,
            "result": result,
            "jobId": job_id,
            "worker": worker,
        }
        response = self.execute(
            query=query,
            operation_name="reportDynamicProfilingResult",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return ReportDynamicProfilingResult.model_validate(data)

    def register_converted_model(
        self,
        source_id: str,
        engine: Engine,
        weight: Upload,
        conversion: ConversionCheckInput,
        profile: bool,
        job_id: str,
        worker: str,
        **kwargs: Any,
    ) -> RegisterConvertedModel:
        query = gql("""
            mutation registerConvertedModel($sourceId: ID!, $engine: Engine!, $weight: Upload!, $conversion: ConversionCheckInput!, $profile: Boolean!, $jobId: ID!, $worker: String!) {
              registerConvertedModel(
                sourceId: $sourceId
                engine: $engine
                weight: $weight
                conversion: $conversion
                profile: $profile
                jobId: $jobId
                worker: $worker
              ) {
                id
              }
            }
            """)
        variables: dict[str, object] = {
            "sourceId": source_id,
            "engine": engine,
            "weight": weight,
            "conversion": conversion,
            "profile": profile,
            "jobId": job_id,
            "worker": worker,
        }
        response = self.execute(
            query=query,
            operation_name="registerConvertedModel",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return RegisterConvertedModel.model_validate(data)
