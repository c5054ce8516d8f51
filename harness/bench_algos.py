"""The bench's algorithm figures (`python -m harness.bench`, docs/speed.md): per task,
algorithm and device, at the official settings (the task's tuned config, n_envs 20):

- update/s: full updates (every agent, the tuned batch) on a warmed-up buffer; for
  on-policy algorithms one update is a whole PPO iteration on a full rollout;
- floor/s, update/floor: the network passes one off-policy update must do (critic forward
  and backward, target and actor passes; `floor_passes`) with nothing else — no
  sampling, optimiser, Polyak, temperatures or metrics — so update/floor is the cost of
  the algorithm's bookkeeping (target ≤ 1.2 for HASAC);
- train steps/s: env steps per second of the collect-and-update loop over whole training
  rounds (train_every env steps and their updates; one rollout and its update), after
  warm-up: the official update-to-data ratio, with the loop's own overhead;
- vec steps/s: VecEnv alone at the same n_envs with pre-drawn actions, and train/vec;
- bf16: update/s and floor/s with algo.bf16=true on the same learner, as a ratio to fp32.
Rates that are compared (update vs floor, fp32 vs bf16) are measured interleaved, so a
load change on a shared machine hits both.

Memory: a replay buffer of `capacity` transitions is allocated on each device with every
page written; the growth (resident set from /proc/self/statm on the CPU, allocated memory on
a GPU) is checked against the stated bytes per transition × capacity.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from typing import Callable

import numpy as np
import torch

import envs
from algos.common.off_policy import HaOffPolicy
from algos.common.registry import config_class
from algos.common.replay import ReplayBuffer
from algos.hasac import Hasac
from algos.hatd3 import Hatd3
from envs.errors import ConfigError
from harness.bench import env_fields, split_name, timed_rate, vec_rate
from harness.config import load_settings
from harness.train import Prepared, prepare

OFF_POLICY_TINY = ["algo.hidden_sizes=[16,16]", "algo.batch_size=32", "algo.buffer_size=4000", "algo.warmup_steps=64",
                   "algo.train_every=32", "algo.updates_per_train=2"]
ON_POLICY_TINY = ["algo.hidden_sizes=[16]", "algo.episode_length=4", "algo.ppo_epoch=1", "algo.critic_epoch=1"]
OFFICIAL_TRAIN_RATE = {("hasac", "mpe/simple_spread"): (120.0, 210.0), ("hasac", "mamujoco/HalfCheetah-2x3"): (200.0, 325.0)}
"""HARL's HASAC env-steps/s at its tuned settings on 2-core machines (issue 13; measured on a
CPU with AVX-512 and bf16 units, not necessarily this one)."""


def interleaved(functions: dict[str, Callable[[], int]], seconds: float, rounds: int = 3) -> dict[str, float]:
    """Rates of several workloads measured in alternation (rounds × seconds/rounds each),
    median per workload: a load change on a shared machine affects all of them alike."""
    rates: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            rates[name].append(timed_rate(function, seconds / rounds))
    return {name: float(np.median(values)) for name, values in rates.items()}


class Loop:
    """harness/train.py's collect-and-update loop without logging or evaluation."""

    def __init__(self, prepared: Prepared):
        self.algo, self.env = prepared.algo, prepared.env
        self.step, self.total, self.updates = self.env.reset(prepared.settings.seed), 0, 0

    def advance(self, env_steps: int) -> int:
        end = self.total + env_steps
        while self.total < end:
            actions = self.algo.act(self.step, explore=True)
            nxt = self.env.step(actions)
            self.total += self.env.n_envs
            self.algo.observe(self.step, actions, nxt)
            while self.algo.ready(self.total):
                self.algo.update()
                self.updates += 1
            self.step = nxt
        return env_steps


def check_benchable(algo: str) -> None:
    """The bench's schedule knows train_every rounds and on-policy rollouts (not QMIX's episodes)."""
    cls = config_class(algo)
    if not (cls.on_policy or "train_every" in {f.name for f in dataclasses.fields(cls)}):
        raise ConfigError(f"bench: {algo} trains on an episode schedule the bench does not time; "
                          "benchable: hasac, hatd3, happo, mappo and their subclasses")


def round_steps(algo, n_envs: int) -> int:
    """Env steps of one training round: train_every (off-policy) or one rollout, in whole vectorised steps."""
    c = algo.config
    steps = c.episode_length * n_envs if c.on_policy else c.train_every
    return -(-steps // n_envs) * n_envs


def prepare_for_bench(name: str, algo: str, device: str, n_envs: int, overrides: list[str]) -> Prepared:
    family, task, env_overrides = split_name(name)
    settings, _ = load_settings([f"env={family}", f"task={task}", f"algo={algo}", f"device={device}", f"n_envs={n_envs}",
                                 f"torch_threads={torch.get_num_threads()}", "progress=false", *env_overrides, *overrides])
    return prepare(settings)


def algo_rows(name: str, algo: str, device: str, n_envs: int, seconds: float, train_seconds: float,
              batch_sizes: list[int], bf16: bool, tiny: bool) -> list[dict]:
    """Rows for one (task, algorithm, device): one per batch size (and precision)."""
    check_benchable(algo)
    family, task, env_overrides = split_name(name)
    vec_before = vec_rate(family, task, n_envs, seconds / 2, None, env_fields(env_overrides))
    tiny_overrides = ON_POLICY_TINY if config_class(algo).on_policy else OFF_POLICY_TINY
    prepared = prepare_for_bench(name, algo, device, n_envs, tiny_overrides if tiny else [])
    try:
        loop, learner = Loop(prepared), prepared.algo
        loop.advance(getattr(learner.config, "warmup_steps", 0) + n_envs)
        while loop.updates == 0:  # until the first update: buffers full, lazy allocations done
            loop.advance(n_envs)
        to_boundary = (getattr(learner.config, "warmup_steps", 0) - loop.total) % round_steps(learner, n_envs)
        loop.advance(to_boundary)  # rounds start right after a round's updates
        rounds, steps_before, updates_before = 0, loop.total, loop.updates
        start = time.perf_counter()
        while rounds == 0 or time.perf_counter() - start < train_seconds:
            loop.advance(round_steps(learner, n_envs))
            rounds += 1
        train_rate = (loop.total - steps_before) / (time.perf_counter() - start)
        base = {"task": name, "algo": algo, "device": device, "n_envs": n_envs, "train steps/s": train_rate,
                "train rounds": rounds, "updates per 1k steps": 1000 * (loop.updates - updates_before) / (loop.total - steps_before)}
        sizes = batch_sizes if isinstance(learner, HaOffPolicy) and batch_sizes else [getattr(learner.config, "batch_size", None)]
        rows = [base | {"batch": size} | update_rates(learner, size, seconds, bf16) for size in sizes]
    finally:
        prepared.close()
    vec = (vec_before + vec_rate(family, task, n_envs, seconds / 2, None, env_fields(env_overrides))) / 2  # before and after
    for row in rows:
        row |= {"vec steps/s": vec, "train/vec": row["train steps/s"] / vec}
    return rows


def update_rates(learner, batch_size: int | None, seconds: float, bf16: bool) -> dict:
    """update/s (and floor/s, bf16 figures for off-policy learners) at `batch_size`."""
    if not isinstance(learner, HaOffPolicy):
        saved = copy.deepcopy(learner.buffer.state_dict())

        def one_update() -> int:
            learner.buffer.load_state_dict(saved)  # a full rollout again: the update only
            learner.update()
            synchronize(learner.device)
            return 1

        return {"update/s": interleaved({"update": one_update}, seconds)["update"]}
    learner.config.batch_size = batch_size
    floor = floor_passes(learner, learner.buffer.sample(batch_size, np.random.default_rng(0)))
    cycle = getattr(learner.config, "policy_freq", 1)  # HATD3: each timed call holds exactly one actor round

    def repeated(function: Callable[[], object], precision_bf16: bool) -> Callable[[], int]:
        def run() -> int:
            learner.config.bf16 = precision_bf16
            try:
                for _ in range(cycle):
                    function()
            finally:
                learner.config.bf16 = False
            synchronize(learner.device)  # GPU kernels are asynchronous: time them to the end
            return cycle
        return run

    workloads = {"update": repeated(learner.update, False), "floor": repeated(floor, False)}
    if bf16:
        workloads |= {"update bf16": repeated(learner.update, True), "floor bf16": repeated(floor, True)}
    rates = interleaved(workloads, seconds)
    row = {"update/s": rates["update"], "floor/s": rates["floor"], "update/floor": rates["floor"] / rates["update"]}
    if bf16:
        row |= {"bf16 update/s": rates["update bf16"], "bf16 floor/s": rates["floor bf16"],
                "bf16/fp32 update": rates["update bf16"] / rates["update"]}
    return row


# -- the floor: the network passes of one update and nothing else ---------------------------------
def floor_passes(learner: HaOffPolicy, batch) -> Callable[[], None]:
    """One update's network passes on a fixed batch, in the learner's precision, without
    the algorithm's bookkeeping. HASAC: N actor samples and the target critic on the next
    views, the critic forward and backward, N − 1 pre-update samples, then per agent an
    actor sample, a critic forward, the backward into the actor, and its post-update
    sample (the last one only with auto_alpha). HATD3: the target actors and critic, the
    critic forward and backward, and on every policy_freq-th call the actor round (N
    actor forwards with graph, per agent Q1 and its backward, N − 1 post-update forwards)."""
    if isinstance(learner, Hasac):
        return hasac_floor(learner, batch)
    if isinstance(learner, Hatd3):
        return hatd3_floor(learner, batch)
    raise TypeError(f"no floor for {type(learner).__name__}")


def critic_passes(learner: HaOffPolicy, batch, next_actions: list[torch.Tensor]) -> None:
    with torch.no_grad():
        learner.critic_target(batch.next_state, next_actions)
    q1, q2 = learner.critic(batch.state, batch.actions)
    (q1.float().sum() + q2.float().sum()).backward()


def hasac_floor(learner: Hasac, batch) -> Callable[[], None]:
    actors, g, N, c = learner.actors, learner.generator, learner.spec.n_agents, learner.config

    def actor_loss(i: int, actions: list[torch.Tensor]) -> torch.Tensor:
        obs, avail = batch.obs[i], batch.avail[i]
        if learner.bounds[i] is None and c.discrete_actor_loss == "expected":
            log_pi = actors[i].log_probs(obs, avail)
            return (log_pi.exp() * (log_pi - learner.q_per_own_action(batch.state, actions, i))).sum()
        action, log_prob = actors[i](obs, avail, g)
        q1, q2 = learner.critic(batch.state, [action if j == i else a for j, a in enumerate(actions)])
        return (torch.min(q1, q2).float() - log_prob).sum()

    def passes() -> None:
        with learner.autocast():
            with torch.no_grad():
                next_actions = [actor(o, m, g)[0] for actor, o, m in zip(actors, batch.next_obs, batch.next_avail)]
            critic_passes(learner, batch, next_actions)
            learner.critic.requires_grad_(False)
            with torch.no_grad():  # agent 0 goes first and replaces its own pre-update sample
                actions = [torch.zeros_like(batch.actions[0])] + [actors[i](batch.obs[i], batch.avail[i], g)[0] for i in range(1, N)]
            for i in range(N):
                actor_loss(i, actions).backward()
                if i + 1 < N or c.auto_alpha:  # the last agent's new log π feeds α_c's step
                    with torch.no_grad():
                        actions[i] = actors[i](batch.obs[i], batch.avail[i], g)[0]
            learner.critic.requires_grad_(True)
        clear_grads(learner)

    return passes


def hatd3_floor(learner: Hatd3, batch) -> Callable[[], None]:
    actors, N, c = learner.actors, learner.spec.n_agents, learner.config
    calls = [0]

    def passes() -> None:
        calls[0] += 1
        with learner.autocast():
            with torch.no_grad():
                next_actions = [target(o) for target, o in zip(learner.actors_target, batch.next_obs)]
            critic_passes(learner, batch, next_actions)
            if calls[0] % c.policy_freq == 0:  # the harness times policy_freq calls at a time: one actor round
                learner.critic.requires_grad_(False)
                actions = [actor(o) for actor, o in zip(actors, batch.obs)]
                for i in range(N):
                    learner.critic.q1(batch.state, [a if j == i else a.detach() for j, a in enumerate(actions)]).float().sum().backward()
                    if i + 1 < N:
                        with torch.no_grad():
                            actions[i] = actors[i](batch.obs[i])
                learner.critic.requires_grad_(True)
        clear_grads(learner)

    return passes


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clear_grads(learner: HaOffPolicy) -> None:
    for module in (learner.critic, learner.actors):
        module.zero_grad(set_to_none=True)


# -- memory -----------------------------------------------------------------------------------
def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def replay_memory(name: str, capacity: int, device: str = "cpu", n_envs: int = 20) -> dict:
    """Bytes per transition of the task's replay table, and the measured growth of a
    `capacity`-transition buffer with every page written: resident set on the CPU, allocated
    memory on a GPU (within 5 % + 16 MiB of the stated size = ok)."""
    family, task, overrides = split_name(name)
    probe = envs.make(family, task, n_envs=1, seed=0, **env_fields(overrides))
    spec = probe.spec
    probe.close()
    used = resident_bytes if device == "cpu" else (lambda: torch.cuda.memory_allocated(device))
    before = used()
    buffer = ReplayBuffer(spec, capacity, n_envs, 0.99, 1, device)
    buffer.table.fill_(1.0)  # zeros() maps pages lazily: write them all
    synchronize(torch.device(device))
    grown = used() - before
    per_transition = buffer.layout.bytes_per_transition()
    stated = per_transition * buffer.T * n_envs
    del buffer
    return {"task": name, "device": device, "capacity": capacity, "bytes/transition": per_transition,
            "stated MiB": stated / 2**20, "measured growth MiB": grown / 2**20, "ok": bool(grown <= 1.05 * stated + 16 * 2**20)}
