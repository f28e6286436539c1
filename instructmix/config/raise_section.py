"""The `raise` section: RAISE, a PPO policy that picks every batch (METHODS §2)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from instructmix.config.sections import Section, gpus_field


class RaiseConfig(Section):
    """RAISE: a PPO policy picks every batch (METHODS §2)."""

    rounds: int = Field(3, ge=1, description="Learner updates; episodes run before each.")
    episodes_per_round: int = Field(4, ge=1, description="Episodes per round, run in "
                                    "parallel as Ray Tune trials.")
    episode_share: float = Field(0.05, gt=0, le=1, description="Share of the usable pool "
                                 "an episode draws its candidates from.")
    episode_steps: int = Field(40, ge=1, description="Optimizer steps of one episode.")
    clusters: Annotated[int, Field(ge=1)] | Literal["categories"] = Field(
        8, description="k-means clusters over the embeddings (or the pool's categories); "
        "each step takes global batch / clusters rows from every cluster.")
    candidates_per_cluster: int = Field(32, ge=1, description="Rows of each cluster the "
                                        "policy scores at a step (a fresh random sample).")
    refresh_every: int = Field(20, ge=1, description="Steps between difficulty refreshes.")
    refresh_rows: int = Field(64, ge=1, description="Rows whose loss a refresh recomputes.")
    reward_every: int = Field(20, ge=1, description="Steps between reward measurements.")
    valid_rows: int = Field(64, ge=1, description="Validation rows (the probe stage's held-"
                            "out pool rows) whose loss the reward measures.")
    stage_features: bool = Field(True, description="Give the policy the training stage (step "
                                 "share, validation loss); false: the ablation.")
    hidden: int = Field(64, ge=4, description="Width of the actor and critic MLPs.")
    lr: float = Field(3e-3, gt=0, description="Learner's Adam learning rate.")
    clip: float = Field(0.2, gt=0, lt=1)
    ppo_epochs: int = Field(4, ge=1)
    cpus_per_episode: float = Field(1.0, gt=0)
    gpus_per_episode: float = gpus_field("episode")
    max_failures: int = Field(1, ge=0, description="Retries of a failed episode.")
