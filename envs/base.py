"""The batched CTDE environment interface every family speaks (DESIGN.md, "envs/base.py").

A family adapter implements `SingleEnv`: one copy of the simulator that converts the
simulator's output into per-agent numpy arrays (`AgentView`). `VecEnv` runs `n_envs`
copies in lock-step, in this process or in worker processes, and owns everything the
families share: auto-reset, the true last observation of a finished episode
(`info["final_obs"]`), episode statistics, and the `Step` batch. Algorithms only ever see
`EnvSpec` and `Step`.

Shapes: E = number of env copies, N = number of agents.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
from gymnasium import spaces

from envs.errors import ConfigError, UserError


@dataclass
class FamilyConfig:
    """Fields every family accepts (`env.<field>`); families subclass this with their own."""

    vectorization: str = "sync"
    """'sync': copies step in this process; 'subproc': copies step in worker processes."""
    n_workers: int | None = None
    """Worker processes for 'subproc' (default: one per core, at most n_envs)."""

    def variant_tokens(self) -> tuple[str, ...]:
        """Labels of the fields set away from their default that change the task's spaces
        (MPE's `discrete`): the results path names them (`<task>-discrete`), so two
        variants of one task never share a directory. Default: none."""
        return ()

    def substitute(self) -> str | None:
        """The name of the simulator this config runs when it is a substitute for the
        published one (SMAC's 'smax'), else None. Results of a substitute are filed apart
        (`<task>@<name>`, harness/layout.py) and never compared with published numbers."""
        return None


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about a task; heterogeneous agents have their own spaces."""

    family: str
    task: str
    n_agents: int
    obs_spaces: tuple[spaces.Box, ...]
    state_space: spaces.Box
    action_spaces: tuple[spaces.Space, ...]
    episode_limit: int
    has_avail_actions: bool = False
    # "win_rate" (SMAC, LAG) or "score" (football): the family's success statistic, if any.
    success_metric: str | None = None
    # One-step games whose only state is the start state: summary.json records policy_probs.
    single_state: bool = False
    # Why this task's returns are not the published simulator's (e.g. a reimplementation);
    # summary.json carries it and the report prints it instead of comparing with the paper.
    results_note: str | None = None
    # One state per agent (HARL's feature-pruned "FP" state, `get_state_agent`): Step.state
    # is the N agents' states concatenated in agent order, [E, N·d], and state_space their
    # concatenation (N·d,). Algorithms that declare `agent_states` give each agent its own
    # critic row on its d values; the others refuse such a task.
    agent_states: bool = False

    @property
    def critic_rows(self) -> int:
        """Rows of the centralised state per env copy: N with per-agent states, else 1."""
        return self.n_agents if self.agent_states else 1

    @property
    def discrete(self) -> bool:
        """True when every agent's action space is Discrete."""
        return all(isinstance(s, spaces.Discrete) for s in self.action_spaces)

    @property
    def continuous(self) -> bool:
        """True when every agent's action space is Box."""
        return all(isinstance(s, spaces.Box) for s in self.action_spaces)

    @property
    def action_kind(self) -> str:
        """'box', 'discrete' or 'mixed' — what algorithms declare they support."""
        if self.continuous:
            return "box"
        if self.discrete:
            return "discrete"
        return "mixed"


@dataclass
class AgentView:
    """What one env copy shows at one instant, already split per agent."""

    obs: list[np.ndarray]  # N × [obs_dim_i]
    state: np.ndarray  # [state_dim]
    avail_actions: list[np.ndarray] | None = None  # N × [n_actions_i], 1 = available
    alive: np.ndarray | None = None  # [N] bool; None means all alive


@dataclass
class Step:
    """One lock-step of all E copies. `info["final_*"]` equal the current arrays except
    in rows whose episode just ended, where they hold that episode's last view — so
    `info["final_obs"]` is always the correct "next observation" for bootstrapping."""

    obs: list[np.ndarray]  # N × [E, obs_dim_i] float32
    state: np.ndarray  # [E, state_dim] float32
    reward: np.ndarray  # [E] float32, the team reward of the transition that led here
    terminated: np.ndarray  # [E] bool: true end, do not bootstrap
    truncated: np.ndarray  # [E] bool: time limit, bootstrap from final_obs
    avail_actions: list[np.ndarray] | None  # N × [E, n_actions_i] or None
    alive: np.ndarray  # [E, N] bool
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> np.ndarray:
        """[E] bool: the episode in this row ended (and the row has auto-reset)."""
        return self.terminated | self.truncated

    @property
    def n_envs(self) -> int:
        return self.state.shape[0]


class SingleEnv(ABC):
    """One copy of a family's simulator. Adapters convert, nothing more: no logging,
    no global seeding, no auto-reset (VecEnv does that)."""

    spec: EnvSpec

    @abstractmethod
    def reset(self, seed: int | None) -> AgentView:
        """Start an episode; `seed=None` continues the copy's own random stream."""

    @abstractmethod
    def step(self, actions: Sequence[np.ndarray]) -> tuple[AgentView, float, bool, bool, dict]:
        """Apply one action per agent; return (view, team_reward, terminated, truncated,
        episode_info). episode_info may carry 'win' or 'score' (bools) when an episode ends."""

    def close(self) -> None:
        """Release simulator resources."""

    def get_state(self) -> Any:
        """A picklable snapshot (plain python/numpy) of everything `step`/`reset(None)` will
        read, the copy's own random stream included, so exact resume replays bit-identically."""
        raise NotImplementedError(self._no_snapshot())

    def set_state(self, state: Any) -> None:
        """Make this copy continue exactly as the copy `state` was taken from would have.
        Must not alias `state`: the same snapshot may be restored again later."""
        raise NotImplementedError(self._no_snapshot())

    def _no_snapshot(self) -> str:
        family = getattr(getattr(self, "spec", None), "family", type(self).__name__)
        return f"{family} envs cannot be snapshotted yet; exact resume needs get_state/set_state"


@runtime_checkable
class BatchedEnv(Protocol):
    """E copies of one task behind one `reset`/`step`: what `envs.make` returns and the
    training loop drives. `VecEnv` is one; a family whose simulator batches its copies
    itself returns its own (through the family module's `make_vec`). Every implementation
    keeps `Step`'s contract: `info["final_*"]` from `final_views`, `info["episodes"]` from
    `EpisodeStats` (return, length, env_index, plus the family's win/score), terminated
    kept apart from truncated."""

    spec: EnvSpec
    n_envs: int

    def reset(self, seed: int | None = None) -> Step:
        """Restart every copy; copy k gets `seed + k` where the simulator can be reseeded."""

    def step(self, actions: Sequence[np.ndarray]) -> Step:
        """`actions`: N × [E, act_dim_i] (Box) or N × [E] (Discrete); finished rows auto-reset."""

    def get_state(self) -> list:
        """One picklable snapshot per copy, in copy order."""

    def set_state(self, states: Sequence) -> None:
        """Restore `get_state()`'s snapshots; a list of the wrong length is a ValueError."""

    def close(self) -> None:
        """Release the simulator; a second call does nothing."""


class EpisodeStats:
    """The running return and length of each of E copies, and the records of the episodes
    that end (`info["episodes"]`): {"return", "length", <the family's episode info>,
    "env_index"}. Returns accumulate in float64 from the rewards given."""

    def __init__(self, n_envs: int):
        self.returns = np.zeros(n_envs, np.float64)
        self.lengths = np.zeros(n_envs, np.int64)

    def reset(self) -> None:
        self.returns[:] = 0.0
        self.lengths[:] = 0

    def add(self, reward: np.ndarray, done: np.ndarray, ep_info: Mapping[int, dict] | None = None) -> list[dict]:
        """Count one step of every copy; close the episodes of the `done` rows (their
        `ep_info[k]`, e.g. {"win": True}, joins the record) and restart their counters."""
        self.returns += reward
        self.lengths += 1
        rows = np.flatnonzero(done)
        records = [{"return": float(self.returns[k]), "length": int(self.lengths[k]),
                    **(ep_info.get(int(k), {}) if ep_info else {}), "env_index": int(k)} for k in rows]
        self.returns[rows] = 0.0
        self.lengths[rows] = 0
        return records

    def snapshot(self, k: int) -> dict:
        """Copy k's running statistics (part of its env snapshot)."""
        return {"episode_return": float(self.returns[k]), "episode_length": int(self.lengths[k])}

    def restore(self, snapshots: Sequence[dict]) -> None:
        self.returns[:] = [s["episode_return"] for s in snapshots]
        self.lengths[:] = [s["episode_length"] for s in snapshots]


def final_views(step: Step, rows: np.ndarray, last: tuple | None = None) -> dict[str, Any]:
    """`info["final_*"]` of a step: the step's own arrays (shared, not copied) where no
    episode ended; copies with the finished episodes' last views written into `rows`.
    `last` = (obs N × [R, ...], state [R, ...], avail N × [R, n] or None, alive [R, N]) for
    the R = len(rows) rows; with no rows (or no last view: a lazily reset simulator whose
    done rows still show the last observation) the current arrays are the final ones."""
    obs, state = list(step.obs), step.state
    avail, alive = step.avail_actions, step.alive
    if len(rows) and last is not None:
        last_obs, last_state, last_avail, last_alive = last
        obs = [o.copy() for o in obs]
        state, alive = state.copy(), alive.copy()
        for i in range(len(obs)):
            obs[i][rows] = last_obs[i]
        state[rows] = last_state
        if avail is not None:
            avail = [a.copy() for a in avail]
            for i in range(len(avail)):
                avail[i][rows] = last_avail[i]
        alive[rows] = last_alive
    return {"final_obs": obs, "final_state": state, "final_avail_actions": avail, "final_alive": alive}


class ProcessBatchedEnv:
    """A `BatchedEnv` that lives in a worker process started with `spawn` (a fresh
    interpreter), for simulators that allow one simulation per process (Isaac Lab): the
    second one runs here. `factory` is picklable and builds the env inside the worker; a
    `UserError` or `ValueError` there is raised here unchanged, any other error as a
    `WorkerError` with the worker's traceback."""

    def __init__(self, factory: Callable[[], BatchedEnv], start_method: str = "spawn"):
        ctx = mp.get_context(start_method)
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_batched_worker, args=(child, factory), daemon=True)
        self._proc.start()
        child.close()
        self._closed = False
        try:
            self.spec, self.n_envs = self._receive()
        except BaseException:
            self.close()
            raise

    def reset(self, seed: int | None = None) -> Step:
        return self._call("reset", seed)

    def step(self, actions: Sequence[np.ndarray]) -> Step:
        return self._call("step", [np.asarray(a) for a in actions])

    def get_state(self) -> list:
        return self._call("get_state")

    def set_state(self, states: Sequence) -> None:
        self._call("set_state", list(states))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.send(("close", ()))
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.terminate()

    def __enter__(self) -> "ProcessBatchedEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, name: str, *args):
        self._conn.send((name, args))
        return self._receive()

    def _receive(self):
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise WorkerError("the env's worker process died without an answer") from None
        if status == "raise":
            raise value
        if status == "error":
            raise WorkerError(f"the env failed in its worker process:\n{value}")
        return value


def _batched_worker(conn, factory: Callable[[], BatchedEnv]) -> None:
    """ProcessBatchedEnv's worker: builds the env, then answers method calls until 'close'."""
    env = None
    try:
        env = factory()
        conn.send(("ok", (env.spec, env.n_envs)))
        while True:
            name, args = conn.recv()
            if name == "close":
                break
            try:
                conn.send(("ok", getattr(env, name)(*args)))
            except (UserError, ValueError) as exc:  # the contract's own errors cross unchanged
                conn.send(("raise", exc))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    except UserError as exc:
        conn.send(("raise", exc))
    except (KeyboardInterrupt, EOFError):
        pass
    except Exception:
        conn.send(("error", traceback.format_exc()))
    finally:
        if env is not None:
            env.close()
        conn.close()


class _Slot:
    """One env copy with its auto-reset; lives in the process that steps it."""

    def __init__(self, env: SingleEnv):
        self.env = env

    def reset(self, seed: int | None) -> AgentView:
        return self.env.reset(seed)

    def step(self, actions: Sequence[np.ndarray]) -> tuple:
        """(view, final_view, reward, terminated, truncated, episode info or None while the
        episode runs); a finished episode restarts at once, so `view` is the new one's."""
        view, reward, terminated, truncated, ep_info = self.env.step(actions)
        final_view, ended = view, None
        if terminated or truncated:
            ended = ep_info
            view = self.reset(None)
        return view, final_view, float(reward), bool(terminated), bool(truncated), ended

    def get_state(self) -> dict:
        spec = self.env.spec
        return {"task": f"{spec.family}/{spec.task}", "env": self.env.get_state()}

    def set_state(self, state: dict) -> None:
        spec = self.env.spec
        if state["task"] != f"{spec.family}/{spec.task}":  # a clear error, not a crash deep in the simulator
            raise ValueError(f"snapshot of {state['task']} cannot restore a {spec.family}/{spec.task} env")
        self.env.set_state(state["env"])


class WorkerError(RuntimeError):
    """An env copy raised inside a worker process; carries the worker's traceback."""


def _worker(conn, factories: list[Callable[[], SingleEnv]]) -> None:
    """Subprocess loop: owns a chunk of slots, answers 'reset'/'step'/'get_state'/
    'set_state'/'spec'/'close'.
    Every answer is ("ok", value) or ("error", traceback) so failures surface in the parent."""
    slots: list[_Slot] = []
    try:
        slots = [_Slot(f()) for f in factories]
        while True:
            cmd, payload = conn.recv()
            if cmd == "close":
                break
            try:
                if cmd == "reset":
                    value = [s.reset(None if payload is None else payload + i) for i, s in enumerate(slots)]
                elif cmd == "step":
                    value = [s.step(a) for s, a in zip(slots, payload)]
                elif cmd == "get_state":
                    value = [s.get_state() for s in slots]
                elif cmd == "set_state":
                    value = [s.set_state(state) for s, state in zip(slots, payload)]
                else:  # "spec"
                    value = slots[0].env.spec
                conn.send(("ok", value))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    except KeyboardInterrupt:
        pass
    except Exception:
        conn.send(("error", traceback.format_exc()))
    finally:
        for s in slots:
            s.env.close()
        conn.close()


class VecEnv:
    """E `SingleEnv` copies in lock-step (a `BatchedEnv`). `vectorization='sync'` steps
    them in this process (cheap envs such as MPE); `'subproc'` spreads them over
    `n_workers` processes (heavy envs). Episode statistics are kept here, in the parent."""

    def __init__(
        self,
        factory: Callable[[], SingleEnv],
        n_envs: int,
        vectorization: str = "sync",
        n_workers: int | None = None,
        start_method: str = "forkserver",
        seed: int | None = None,
    ):
        if n_envs < 1:
            raise ConfigError(f"n_envs must be >= 1, got {n_envs}")
        if vectorization not in ("sync", "subproc"):
            raise ConfigError(f"vectorization must be 'sync' or 'subproc', got {vectorization!r}")
        self.n_envs = n_envs
        self.vectorization = vectorization
        self.seed = seed
        if vectorization == "sync":
            self._slots = [_Slot(factory()) for _ in range(n_envs)]
            self.spec = self._slots[0].env.spec
        else:
            n_workers = min(n_workers or mp.cpu_count(), n_envs)
            bounds = np.linspace(0, n_envs, n_workers + 1).astype(int).tolist()  # python ints
            self._chunks = list(zip(bounds[:-1], bounds[1:]))
            ctx = mp.get_context(start_method)
            self._conns, self._procs = [], []
            for lo, hi in self._chunks:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child, [factory] * (hi - lo)), daemon=True)
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
            self._conns[0].send(("spec", None))
            self.spec = self._receive(self._conns[0])
        self._stats = EpisodeStats(n_envs)
        self._closed = False

    # -- public API ---------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> Step:
        """Reset every copy; copy k gets `seed + k`, so one seed fixes all trajectories.
        Without a seed, the seed given to `envs.make` is used."""
        seed = self.seed if seed is None else seed
        if self.vectorization == "sync":
            views = [s.reset(None if seed is None else seed + k) for k, s in enumerate(self._slots)]
        else:
            for (lo, _), conn in zip(self._chunks, self._conns):
                conn.send(("reset", None if seed is None else int(seed + lo)))
            views = [v for conn in self._conns for v in self._receive(conn)]
        zeros = np.zeros(self.n_envs, dtype=bool)
        step = self._batch(views, np.zeros(self.n_envs, np.float32), zeros, zeros.copy())
        self._stats.reset()
        step.info.update(final_views(step, np.array([], int)))
        step.info["episodes"] = []
        return step

    def step(self, actions: Sequence[np.ndarray]) -> Step:
        """`actions`: N × [E, act_dim_i] (Box) or N × [E] (Discrete)."""
        per_env = [[np.asarray(a[k]) for a in actions] for k in range(self.n_envs)]
        if self.vectorization == "sync":
            results = [s.step(a) for s, a in zip(self._slots, per_env)]
        else:
            for (lo, hi), conn in zip(self._chunks, self._conns):
                conn.send(("step", per_env[lo:hi]))
            results = [r for conn in self._conns for r in self._receive(conn)]
        views, finals, rewards, terms, truncs, ended = zip(*results)
        step = self._batch(
            list(views),
            np.asarray(rewards, np.float32),
            np.asarray(terms, bool),
            np.asarray(truncs, bool),
        )
        rows = np.flatnonzero(step.done)
        last = _stack_views([finals[k] for k in rows], self.spec.n_agents) if len(rows) else None
        step.info.update(final_views(step, rows, last))
        # float64 sums of the env's own rewards, before the float32 cast of Step.reward
        ep_info = {k: e for k, e in enumerate(ended) if e is not None}
        step.info["episodes"] = self._stats.add(np.asarray(rewards, np.float64), step.done, ep_info)
        return step

    def get_state(self) -> list:
        """One picklable snapshot per copy, in copy order (env state, its random stream and
        the running episode statistics). Restorable into any VecEnv of the same family,
        task and n_envs, whatever its vectorization."""
        if self.vectorization == "sync":
            states = [s.get_state() for s in self._slots]
        else:
            for conn in self._conns:
                conn.send(("get_state", None))
            states = [state for conn in self._conns for state in self._receive(conn)]
        return [dict(state, **self._stats.snapshot(k)) for k, state in enumerate(states)]

    def set_state(self, states: Sequence) -> None:
        """Restore `get_state()`'s snapshots: the next `step` continues exactly as the
        snapshotted copies would have, auto-resets included."""
        if len(states) != self.n_envs:
            raise ValueError(f"{len(states)} env states for {self.n_envs} env copies")
        if self.vectorization == "sync":
            for s, state in zip(self._slots, states):
                s.set_state(state)
        else:
            for (lo, hi), conn in zip(self._chunks, self._conns):
                conn.send(("set_state", list(states[lo:hi])))
            for conn in self._conns:
                self._receive(conn)
        self._stats.restore(states)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.vectorization == "sync":
            for s in self._slots:
                s.env.close()
        else:
            for conn in self._conns:
                try:
                    conn.send(("close", None))
                except (BrokenPipeError, OSError):
                    pass
            for proc in self._procs:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.terminate()

    def __enter__(self) -> "VecEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @staticmethod
    def _receive(conn):
        try:
            status, value = conn.recv()
        except EOFError:
            raise WorkerError("an env worker process died without an answer") from None
        if status == "error":
            raise WorkerError(f"an env copy failed in its worker process:\n{value}")
        return value

    # -- batching -------------------------------------------------------------------------
    def _batch(self, views: list[AgentView], reward, terminated, truncated) -> Step:
        obs, state, avail, alive = _stack_views(views, self.spec.n_agents)
        return Step(obs, state, reward, terminated, truncated, avail, alive, {})


def _stack_views(views: list[AgentView], n_agents: int):
    """The E copies' views as [E, ...] arrays, always fresh copies (an env may reuse its
    buffers). np.array(list, dtype) stacks and converts in one pass: 2.7× faster than
    np.stack + astype at 20 copies, 5× at one."""
    obs = [np.array([v.obs[i] for v in views], np.float32) for i in range(n_agents)]
    state = np.array([v.state for v in views], np.float32)
    avail = None
    if views[0].avail_actions is not None:
        avail = [np.array([v.avail_actions[i] for v in views], bool) for i in range(n_agents)]
    if all(v.alive is None for v in views):  # families without deaths
        alive = np.ones((len(views), n_agents), bool)
    else:
        alive = np.array([np.ones(n_agents, bool) if v.alive is None else v.alive for v in views], bool)
    return obs, state, avail, alive
