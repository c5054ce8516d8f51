"""MEHAML-KL: a second instance of the MEHAML template of the HASAC paper (Liu et al.,
"Maximum Entropy Heterogeneous-Agent Reinforcement Learning", ICLR 2024, arXiv 2306.10715,
§4), next to HASAC: the same learner with a KL drift functional and a trust-region
neighbourhood operator in each agent's update.

MEHAML template (paper §4, after HAML, Zhong et al. JMLR 2024): at iteration k, agents in a
fresh random order i_1..i_N each take
    π_{k+1}^{i_m} = argmax_{π ∈ U(π_k^{i_m})} E[Q_{π_k}(s, a^{i_1:m−1}_{k+1}, a) − α log π(a|o)] − D(π | π_k^{i_m})
with a drift D ≥ 0 that is 0, with zero gradient, at π = π_k, and a neighbourhood U(π_k) ∋ π_k.
HASAC is the instance D ≡ 0, U ≡ every policy. This one:
    D(π | π_k) = β E_o[KL(π(·|o) ‖ π_k(·|o))]           (mirror-descent drift, `kl_coef` = β)
    U(π_k)     = {π : E_o[KL(π ‖ π_k)] ≤ δ}              (`kl_max` = δ; 0 = no trust region)
For one agent with a tabular policy the penalised step has the closed form
π_{k+1} ∝ π_k^{β/(α+β)} exp(Q/(α+β)): a geometric mixture of the old policy and the soft best
response, whose fixed point π ∝ exp(Q/α) is HASAC's — so the soft QRE is unchanged.

The anchor π_k. HASAC takes one gradient step per update; the KL to the policy at the start
of that same step is 0 with zero gradient, so an anchor refreshed every step would make D do
nothing. One template iteration k is therefore `anchor_every` gradient updates, and π_k is
a frozen copy of each actor taken at the start of the iteration (by default every 50
updates: one HARL training round, so π_k is the policy that collected the newest data).
A frozen copy, not a Polyak average: it is an iterate of the template, which an average of
all past actors is not.

Neighbourhood: after agent i's gradient step, if the batch estimate of E[KL(π_new ‖ π_k)]
exceeds δ, the parameter step is halved (θ_old + η(θ_new − θ_old), η = 1/2, 1/4, …; TRPO's
backtracking line search) until it fits, at most `max_backtracks` times, else undone. Adam's
moment estimates keep the full step's gradient.

Closed-form KLs: categorical Σ_a p(a)(log p(a) − log q(a)); for the squashed Gaussian, the KL
of the pre-tanh Gaussians, which equals the KL of the action distributions because
a = scale(tanh(u)) is a bijection and KL is invariant under bijections.
Everything else (critic, temperatures, sequential update, schedule) is HASAC's (algos/hasac.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from algos.common.networks import masked_mean
from algos.common.off_policy import read_metrics
from algos.common.replay import Batch
from algos.hasac import Hasac, HasacConfig
from envs.base import EnvSpec
from envs.errors import ConfigError

LOG_STD_BOUNDS = (-20.0, 2.0)
"""The clamp of SquashedGaussianActor.forward (HARL squashed_gaussian_policy.py)."""


@dataclass
class MehamlKlConfig(HasacConfig):
    """HASAC's fields (harness/tuned/mehaml_kl.yaml is HASAC's tuned table) plus the drift and
    the neighbourhood."""

    packed: ClassVar[str | None] = None  # the drift is not in HASAC's packed update: pack=1 only

    kl_coef: float = 1.0
    """β of the drift β·KL(π ‖ π_k), in the units of the rewards (like α); 0 = no drift."""
    anchor_every: int = 50
    """Gradient updates per MEHAML iteration: the anchor π_k is refreshed this often."""
    kl_max: float = 0.0
    """δ of the trust region E[KL(π ‖ π_k)] ≤ δ (nats); 0 = no neighbourhood constraint."""
    max_backtracks: int = 10
    """Halvings of a step that leaves the trust region before it is undone."""

    def validate(self, spec: EnvSpec) -> None:
        super().validate(spec)
        checks = [
            (self.kl_coef >= 0, f"kl_coef must be >= 0, got {self.kl_coef}"),
            (self.anchor_every >= 1, f"anchor_every must be >= 1, got {self.anchor_every}"),
            (self.kl_max >= 0, f"kl_max must be >= 0 (0 = no trust region), got {self.kl_max}"),
            (self.max_backtracks >= 0, f"max_backtracks must be >= 0, got {self.max_backtracks}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"algo: {message}")


class MehamlKl(Hasac):
    """HASAC with a KL drift to a lagging anchor and an optional KL trust region."""

    Config = MehamlKlConfig
    config: MehamlKlConfig

    def __init__(self, spec: EnvSpec, config: MehamlKlConfig, n_envs: int, device: torch.device, seed: int):
        super().__init__(spec, config, n_envs, device, seed)
        self.anchors = copy.deepcopy(self.actors).requires_grad_(False)
        self.drift_metrics: dict[str, float] = {}

    def update(self) -> dict[str, float]:
        if self.updates % self.config.anchor_every == 0:  # a new MEHAML iteration starts
            self.anchors.load_state_dict(self.actors.state_dict())
        self.drift_metrics = {}
        metrics = super().update()
        return metrics | read_metrics(self.drift_metrics)  # one device→host copy for the drift terms

    def checkpointed(self) -> dict:
        return super().checkpointed() | {"anchors": self.anchors}

    # -- the template's D and U --------------------------------------------------------------
    def drift_penalty(self, i: int, batch: Batch) -> torch.Tensor:
        """β·E_valid[KL(πⁱ(·|o) ‖ π_kⁱ(·|o))] on the batch (Hasac.actor_step adds it)."""
        kl = masked_mean(self.kl_to_anchor(i, batch.obs[i], batch.avail[i]), batch.valid[:, i])
        self.drift_metrics[f"kl/agent_{i}"] = kl.detach()
        return self.config.kl_coef * kl

    def actor_step(self, i: int, batch: Batch, actions: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """HASAC's penalised step, then the neighbourhood U: backtrack into the trust region."""
        if self.config.kl_max == 0:
            return super().actor_step(i, batch, actions)
        before = [p.detach().clone() for p in self.actors[i].parameters()]
        log_prob, metrics = super().actor_step(i, batch, actions)
        self.drift_metrics[f"step_scale/agent_{i}"] = self.backtrack(i, batch, before)
        return log_prob, metrics

    @torch.no_grad()
    def backtrack(self, i: int, batch: Batch, before: list[torch.Tensor]) -> float:
        """Shrink agent i's last step until E_valid[KL(π ‖ π_k)] ≤ δ; returns the kept
        fraction η of the step (1 = untouched, 0 = undone)."""
        params = list(self.actors[i].parameters())
        after = [p.detach().clone() for p in params]
        eta = 1.0
        for attempt in range(self.config.max_backtracks + 1):
            kl = masked_mean(self.kl_to_anchor(i, batch.obs[i], batch.avail[i]), batch.valid[:, i]).item()
            if kl <= self.config.kl_max:
                return eta
            eta = 0.0 if attempt == self.config.max_backtracks else eta / 2
            for p, old, new in zip(params, before, after):
                p.copy_(old + eta * (new - old))
        return eta

    def kl_to_anchor(self, i: int, obs: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """KL(πⁱ(·|o) ‖ π_kⁱ(·|o)) per row [B, 1]; gradient flows into agent i's actor only."""
        actor, anchor = self.actors[i], self.anchors[i]
        if self.bounds[i] is None:
            with torch.no_grad():
                anchor_log_pi = anchor.log_probs(obs, avail)
            return categorical_kl(actor.log_probs(obs, avail), anchor_log_pi)
        with torch.no_grad():
            anchor_mu, anchor_log_std = pre_tanh_gaussian(anchor, obs)
        return gaussian_kl(*pre_tanh_gaussian(actor, obs), anchor_mu, anchor_log_std)


def pre_tanh_gaussian(actor: nn.Module, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, log σ) [B, A] of a SquashedGaussianActor's Gaussian before tanh and rescaling."""
    h = actor.trunk(obs)
    return actor.mu(h), actor.log_std(h).clamp(*LOG_STD_BOUNDS)


def categorical_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ_a p(a)(log p(a) − log q(a)) per row [B, 1]; log_p, log_q [B, n]. Masked
    actions have p = q = 0 and contribute 0."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1, keepdim=True)


def gaussian_kl(mu_p: torch.Tensor, log_std_p: torch.Tensor, mu_q: torch.Tensor, log_std_q: torch.Tensor) -> torch.Tensor:
    """KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) of diagonal Gaussians, summed over dims [B, 1]:
    Σ_j [log σ_q − log σ_p + (σ_p² + (μ_p − μ_q)²) / (2σ_q²) − ½]."""
    var_p, var_q = (2 * log_std_p).exp(), (2 * log_std_q).exp()
    per_dim = log_std_q - log_std_p + (var_p + (mu_p - mu_q).pow(2)) / (2 * var_q) - 0.5
    return per_dim.sum(dim=-1, keepdim=True)
