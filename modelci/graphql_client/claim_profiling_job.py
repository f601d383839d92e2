from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import Engine, JobKind


class ClaimProfilingJob(BaseModel):
    claim_profiling_job: Optional["ClaimProfilingJobClaimProfilingJob"] = Field(
        alias="claimProfilingJob"
    )


class ClaimProfilingJobClaimProfilingJob(BaseModel):
    id: str
    model_id: str = Field(alias="modelId")
    kind: JobKind
    batch_sizes: list[int] = Field(alias="batchSizes")
    devices: list[str]
    targets: list[Engine]
    profile_variants: bool = Field(alias="profileVariants")
    budget_seconds: Optional[float] = Field(alias="budgetSeconds")
    max_p99_latency: Optional[float] = Field(alias="maxP99Latency")
    max_batch: Optional[int] = Field(alias="maxBatch")
    attempts: int


ClaimProfilingJob.model_rebuild()
