"""The `ray` section: which Ray instance a run uses, and its dashboard."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # as every section

    address: str | None = Field(
        None, description="Ray address to join; None starts a local instance (or uses RAY_ADDRESS)."
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local instance (None: all).")
    dashboard: bool = Field(False, description="Start the dashboard with a local instance.")
    dashboard_host: str = Field(
        "127.0.0.1", min_length=1, description="Address a local instance's dashboard binds "
        "to: loopback only by default; 0.0.0.0 serves it (and its job API) on every interface.")
