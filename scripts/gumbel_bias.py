"""Where the straight-through Gumbel-Softmax bias of HASAC's discrete actor comes from.

Two agents with tabular policies play a matrix game at a fixed temperature α and follow
the same estimator HASAC uses (algos/common/distributions.py `gumbel_softmax_hard`): agent i
minimises −[Q(x¹, x²) − α log πⁱ(aⁱ)] with xⁱ the straight-through one-hot of a Gumbel
sample (hard forward, softmax backward) and the other agent's action drawn from its policy.
Only the critic Q differs:

- exact: Q(x¹, x²) = x¹ᵀ R x², the payoff as the bilinear function it is. Given the other's
  action, Q is linear in an agent's own one-hot, so dQ/dx at a vertex is the vector of the
  payoffs of every own action, and at the soft QRE the expected gradient is exactly 0;
- fitted: an MLP trained by regression on the 9 one-hot vertices only (what a HASAC critic
  sees in its buffer). Its values at the vertices match R, its slopes there do not: nothing
  constrains Q between vertices, so dQ/dx at e_a is not (Q(e_b, ·))_b.

Prints, per game and seed: the fitted critic's largest vertex error and slope error, and the
total variation from the soft QRE after training with either critic (and, as a control,
with the fitted critic and the exact expectation over own actions, which reads only its
vertex values).

    python scripts/gumbel_bias.py                             # a few minutes on one core
    python scripts/gumbel_bias.py --lr 0.01 --updates 6000    # less SGD noise: exact Q closes in
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

from algos.common.distributions import gumbel_softmax_hard
from algos.common.qre import soft_qre, total_variation
from envs.matrix import CLIMBING, penalty_payoff

GAMES = {"climbing (α = 10)": (np.array(CLIMBING, float), 10.0),
         "penalty k = −100 (α = 30)": (np.array(penalty_payoff(-100.0), float), 30.0)}


def exact_critic(payoff: np.ndarray):
    table = torch.tensor(payoff, dtype=torch.float64)
    return lambda x1, x2: ((x1 @ table) * x2).sum(-1, keepdim=True)


def fitted_critic(payoff: np.ndarray, seed: int, steps: int = 3000):
    """MLP on concat(one-hot¹, one-hot²), [64, 64] ReLU as a HASAC critic, fitted on the vertices."""
    torch.manual_seed(seed)
    n1, n2 = payoff.shape
    net = nn.Sequential(nn.Linear(n1 + n2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)).double()
    x = torch.cat([torch.eye(n1).repeat_interleave(n2, 0), torch.eye(n2).repeat(n1, 1)], -1).double()
    y = torch.tensor(payoff.reshape(-1, 1))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        optimizer.step()
    net.requires_grad_(False)
    return lambda x1, x2: net(torch.cat([x1, x2], -1))


def vertex_errors(critic, payoff: np.ndarray) -> tuple[float, float]:
    """(max |Q(e_a, e_b) − R[a, b]|, max over (a, b) of |dQ/dx¹ at (e_a, e_b) − R[:, b]|)."""
    n1, n2 = payoff.shape
    value_error, slope_error = 0.0, 0.0
    for a in range(n1):
        for b in range(n2):
            x1 = torch.eye(n1, dtype=torch.float64)[a:a + 1].requires_grad_(True)
            q = critic(x1, torch.eye(n2, dtype=torch.float64)[b:b + 1])
            (slope,) = torch.autograd.grad(q.sum(), x1)
            value_error = max(value_error, abs(q.item() - payoff[a, b]))
            slope_error = max(slope_error, float(np.abs(slope[0].numpy() - payoff[:, b]).max()))
    return value_error, slope_error


def gradient_at(critic, payoff: np.ndarray, alpha: float, policies: list[np.ndarray], i: int,
                samples: int = 200_000, seed: int = 0) -> np.ndarray:
    """The expected straight-through gradient of agent i's loss with respect to its logits
    at `policies` (Monte Carlo over `samples` Gumbel draws), the other agent playing its policy."""
    generator = torch.Generator().manual_seed(seed)
    logits = [torch.tensor(np.log(p), dtype=torch.float64, requires_grad=(j == i)) for j, p in enumerate(policies)]
    joint = [gumbel_softmax_hard(p.expand(samples, -1), None, generator)[0] for p in logits]
    joint[i], log_prob = gumbel_softmax_hard(logits[i].expand(samples, -1), None, generator)
    (grad,) = torch.autograd.grad((alpha * log_prob - critic(*joint)).mean(), logits[i])
    return grad.numpy()


def train(critic, payoff: np.ndarray, alpha: float, seed: int, expected: bool, updates: int = 1500,
          batch: int = 256, lr: float = 0.05) -> list[np.ndarray]:
    """Tabular logits, Adam, sequential updates in a random order; returns both policies."""
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    logits = [torch.zeros(n, dtype=torch.float64, requires_grad=True) for n in payoff.shape]
    optimizers = [torch.optim.Adam([p], lr=lr) for p in logits]
    for _ in range(updates):
        with torch.no_grad():
            joint = [gumbel_softmax_hard(p.expand(batch, -1), None, generator)[0] for p in logits]
        for i in rng.permutation(2):
            log_pi = torch.log_softmax(logits[i], -1).expand(batch, -1)
            if expected:  # Σ_a π(a)[Q(e_a, x₋ᵢ) − α log π(a)]: the critic's vertex values only
                own = torch.eye(len(logits[i]), dtype=torch.float64)
                q = torch.stack([critic(*([own[a].expand(batch, -1), joint[1]] if i == 0 else [joint[0], own[a].expand(batch, -1)]))[:, 0]
                                 for a in range(len(own))], -1)
                loss = (log_pi.exp() * (alpha * log_pi - q)).sum(-1).mean()
            else:
                x, log_prob = gumbel_softmax_hard(logits[i].expand(batch, -1), None, generator)
                q = critic(*([x, joint[1]] if i == 0 else [joint[0], x]))
                loss = (alpha * log_prob - q).mean()
            optimizers[i].zero_grad()
            loss.backward()
            optimizers[i].step()
            with torch.no_grad():
                joint[i] = gumbel_softmax_hard(logits[i].expand(batch, -1), None, generator)[0]
    return [torch.softmax(p.detach(), -1).numpy() for p in logits]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate of the logits")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| game | seed | fitted critic: max vertex error / max slope error | max abs. expected gradient at the QRE: "
          "exact Q / fitted Q | TV to QRE: exact Q, straight-through | fitted Q, straight-through "
          "| fitted Q, exact expectation |")
    print("|---|---|---|---|---|---|---|")
    for name, (payoff, alpha) in GAMES.items():
        qre = soft_qre(payoff, alpha)
        for seed in range(args.seeds):
            fitted = fitted_critic(payoff, seed)
            value_error, slope_error = vertex_errors(fitted, payoff)
            at_qre = [max(np.abs(gradient_at(c, payoff, alpha, qre, i, seed=seed)).max() for i in range(2))
                      for c in (exact_critic(payoff), fitted)]
            distances = []
            for critic, expected in ((exact_critic(payoff), False), (fitted, False), (fitted, True)):
                policies = train(critic, payoff, alpha, seed, expected, args.updates, lr=args.lr)
                distances.append(max(total_variation(p, q) for p, q in zip(policies, qre)))
            print(f"| {name} | {seed} | {value_error:.2g} / {slope_error:.3g} | {at_qre[0]:.3f} / {at_qre[1]:.3f} | "
                  + " | ".join(f"{d:.3f}" for d in distances) + " |", flush=True)


if __name__ == "__main__":
    main()
