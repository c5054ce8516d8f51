"""The LAG reimplementation (envs/lag/): spaces of the spec, autopilot
tolerances, hand-computed geometry, a missile hit, every termination condition, reward
signs and bounds, determinism, aircraft reuse and replay snapshots, and the one-line
missing-jsbsim error.
Everything that flies needs jsbsim and is skipped without it."""

import importlib.util
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import envs
from envs import lag
from envs.lag import combat, heading
from envs.lag import sim
from envs.errors import EnvUnavailable

NO_WEAPON, SHOOT, HEADING = lag.TASKS
needs_jsbsim = pytest.mark.skipif(
    importlib.util.find_spec("jsbsim") is None, reason="jsbsim not installed (pip install 'hasac-bench[lag]')"
)


def fly(ac, autopilot, alt, psi, speed, seconds, every=12):
    for k in range(int(seconds * 60)):
        if k % every == 0:
            ac.sense()
            autopilot.control(ac, alt, psi, speed, every / 60)
        ac.run()
    ac.sense()


def level_f16(**kw):
    args = dict(name="t", lat=60.0, lon=120.0, alt_m=combat.START_ALT, heading_deg=0.0, u_mps=combat.START_U) | kw
    return sim.Aircraft(**args)


# -- spaces and episodes -------------------------------------------------------------------
@needs_jsbsim
@pytest.mark.parametrize("task, obs, n_actions", [(NO_WEAPON, 27, 45), (SHOOT, 33, 90)])
def test_spaces_match_the_spec(task, obs, n_actions):
    env = envs.make("lag", task, n_envs=1, seed=0)
    spec = env.spec
    assert spec.n_agents == 2 and spec.success_metric == "win_rate"
    assert [s.shape for s in spec.obs_spaces] == [(obs,), (obs,)]
    assert spec.state_space.shape == (4 * obs,)
    assert [s.n for s in spec.action_spaces] == [n_actions, n_actions]
    step = env.reset()
    assert step.obs[0].shape == (1, obs) and step.state.shape == (1, 4 * obs)
    np.testing.assert_array_equal(step.state[0, :obs], step.obs[0][0])  # state = concat of all 4
    env.close()


def test_flat_actions_decode_row_major_like_multidiscrete():
    assert combat.decode(0, False) == (0, 0, 0, 0)
    assert [combat.decode(i, False) for i in range(45)] == [(*np.unravel_index(i, (3, 5, 3)), 0) for i in range(45)]
    assert [combat.decode(i, True) for i in range(90)] == [tuple(np.unravel_index(i, (3, 5, 3, 2))) for i in range(90)]
    assert combat.decode(combat.HOLD, False) == (1, 2, 1, 0)  # Δ = 0 on every axis
    with pytest.raises(ValueError):
        combat.decode(45, False)


@needs_jsbsim
def test_random_shoot_missile_episode_terminates_with_finite_values_and_stats():
    env = envs.make("lag", SHOOT, n_envs=1, seed=0)
    rng, episodes, step = np.random.default_rng(0), [], env.reset()
    for _ in range(400):
        step = env.step([rng.integers(90, size=1), rng.integers(90, size=1)])
        assert np.isfinite(step.state).all() and np.isfinite(step.reward).all()
        assert (np.abs(step.state) <= 10).all()
        episodes += step.info["episodes"]
        if episodes:
            break
    assert episodes, "a random ShootMissile episode should end well within 400 steps"
    ep = episodes[0]
    assert {"win", "loss", "timeout", "crash", "missiles_fired", "missiles_hit"} <= set(ep)
    assert ep["win"] or ep["loss"]
    env.close()


@needs_jsbsim
def test_no_weapon_truncates_at_the_episode_limit():
    env = envs.make("lag", NO_WEAPON, n_envs=1, seed=0, episode_limit=5)
    env.reset()
    for t in range(5):
        step = env.step([np.array([22]), np.array([22])])  # hold altitude, heading, speed
    assert step.truncated[0] and not step.terminated[0]
    assert step.info["episodes"][0]["timeout"] and not step.info["episodes"][0]["win"]
    env.close()


@needs_jsbsim
def test_same_actions_same_trajectory_and_replay_snapshot_is_exact():
    cfg = lag.Config()
    a, b = combat.LagEnv(SHOOT, cfg), combat.LagEnv(SHOOT, cfg)
    rng = np.random.default_rng(1)
    acts = [(rng.integers(90), rng.integers(90)) for _ in range(30)]
    a.reset(0), b.reset(5)
    for act in acts[:15]:
        a.step(act)
    snapshot = a.get_state()
    b.set_state(snapshot)
    for act in acts[15:]:
        va, ra, *_ = a.step(act)
        vb, rb, *_ = b.step(act)
        np.testing.assert_array_equal(va.state, vb.state)
        assert ra == rb


# -- autopilot -----------------------------------------------------------------------------
@needs_jsbsim
def test_trimmed_level_flight_holds_altitude_for_60_s():
    ac = level_f16()
    for _ in range(60 * 60):
        ac.run()
    ac.sense()
    assert abs(ac.alt - combat.START_ALT) < 15.0 and abs(math.degrees(ac.psi)) < 1.0


@needs_jsbsim
def test_autopilot_holds_altitude_heading_and_speed_for_60_s():
    ac, ap = level_f16(), sim.Autopilot()
    alt0, psi0, v0 = ac.alt, ac.psi, ac.vt
    worst = [0.0, 0.0, 0.0]
    for _ in range(300):  # 300 decisions of 0.2 s, the autopilot once per decision as in the tasks
        ap.control(ac, alt0, psi0, v0, 0.2)
        ac.run(12)
        ac.sense()
        errors = (abs(ac.alt - alt0), abs(math.degrees(sim.wrap(ac.psi - psi0))), abs(ac.vt - v0))
        worst = [max(w, e) for w, e in zip(worst, errors)]
    assert worst[0] < 5.0 and worst[1] < 0.5 and worst[2] < 1.0, worst  # m, degrees, m/s


@needs_jsbsim
def test_autopilot_reaches_heading_altitude_and_speed_changes():
    ac, ap = level_f16(), sim.Autopilot()
    alt0, v0 = ac.alt, ac.vt
    fly(ac, ap, alt0, math.radians(90.0), v0, 30)
    assert abs(math.degrees(sim.wrap(ac.psi - math.radians(90.0)))) < 3.0  # 90° turn in 30 s
    assert abs(ac.alt - alt0) < 60.0
    fly(ac, ap, alt0 + 500.0, math.radians(90.0), v0 + 17.0, 30)
    assert abs(ac.alt - (alt0 + 500.0)) < 30.0 and abs(ac.vt - (v0 + 17.0)) < 5.0


@needs_jsbsim
def test_a_reset_aircraft_flies_exactly_like_a_new_one():
    """Envs keep their four FDMs and re-trim them on reset: that must not leak anything
    from the last episode (FCS integrators, engine, a wild attitude) into the next."""

    def wild_then_straight(ac):
        ac.set_controls(1.0, -1.0, 0.5, 0.9)  # full roll and pull: a tumbling F-16
        ac.run(300)
        ac.reset()
        return straight(ac)

    def straight(ac):
        out = []
        for k in range(120):
            ac.set_controls(0.2 * math.sin(k / 10), -0.1, 0.0, ac.trim_throttle)
            ac.run(12)
            ac.sense()
            out.append((ac.pos, ac.vel, ac.roll, ac.pitch, ac.psi, ac.nz, ac.time))
        return out

    assert wild_then_straight(level_f16()) == straight(level_f16())


# -- geometry --------------------------------------------------------------------------------
def test_geometry_against_hand_computed_cases():
    north = (200.0, 0.0, 0.0)
    ao, ta, rng, side = sim.geometry((0, 0, 0), north, (0.0, 1000.0, 0.0), north)  # abeam, right
    assert (ao, ta, rng, side) == pytest.approx((math.pi / 2, math.pi / 2, 1000.0, 1.0))
    ao, ta, rng, side = sim.geometry((0, 0, 0), north, (3000.0, -4000.0, 0.0), north)  # ahead-left
    assert rng == pytest.approx(5000.0) and side == -1.0
    assert ao == pytest.approx(math.acos(3 / 5)) and ta == pytest.approx(math.acos(3 / 5))
    ao, ta, _, side = sim.geometry((0, 0, 0), north, (5000.0, 0.0, 0.0), (-200.0, 0.0, 0.0))  # head-on
    assert (ao, ta, side) == pytest.approx((0.0, math.pi, 0.0))
    own = sim.Kinematics((0.0, 0.0, 6000.0), north, 200.0)
    other = sim.Kinematics((0.0, 1000.0, 7000.0), north, 250.0)
    # line of sight (0, 1000, 1000) is perpendicular to both velocities: AO = TA = 90°
    expected = [50 / 340, 1.0, math.pi / 2, math.pi / 2, math.sqrt(2e6) / 1e4, 1.0]
    assert sim.relative_features(own, other) == pytest.approx(expected)


def test_pair_geometry_is_geometry_seen_from_both_ends_to_the_bit():
    rng = np.random.default_rng(4)
    for _ in range(200):
        a = sim.Kinematics(tuple(rng.normal(0, 5000, 3)), tuple(rng.normal(0, 250, 3)), 250.0)
        b = sim.Kinematics(tuple(rng.normal(0, 5000, 3)), tuple(rng.normal(0, 250, 3)), 230.0)
        from_a, from_b = sim.pair_geometry(a, b)
        assert from_a == sim.geometry(a.pos, a.vel, b.pos, b.vel)
        assert from_b == sim.geometry(b.pos, b.vel, a.pos, a.vel)


@needs_jsbsim
def test_start_observation_matches_hand_computed_geometry():
    """A0100 at the origin flying north at 800 ft/s; its partner 0.01° of longitude east
    (N(60°)·cos 60°·0.01° = 558 m, abeam right); B0200 0.1° north and 0.01° east, head-on."""
    env = combat.LagEnv(NO_WEAPON, lag.Config())
    obs = env.reset(0).obs[0]
    ego, partner, enemy2 = obs[:9], obs[9:15], obs[21:27]
    assert ego[0] == pytest.approx(6096.0 / 5000.0) and ego[5] == pytest.approx(800 * 0.3048 / 340, rel=1e-3)
    abeam = 6_394_209.0 * 0.5 * math.radians(0.01)  # prime-vertical radius at 60° × cos(lat) × Δlon
    assert partner == pytest.approx([0.0, 0.0, math.pi / 2, math.pi / 2, abeam / 1e4, 1.0], abs=2e-3)
    north = 11_152.0  # 0.1° of latitude at 60° (meridian arc), checked in the NEU test below
    rng = math.hypot(north, abeam)
    drop = rng**2 / (2 * 6.38e6)  # the tangent plane: B sits below A's horizon by d²/2R
    assert enemy2[1] == pytest.approx(-drop / 1000.0, abs=5e-4)
    assert enemy2 == pytest.approx([0.0, enemy2[1], math.atan2(abeam, north), math.pi - math.atan2(abeam, north),
                                    rng / 1e4, 1.0], abs=2e-3)


def test_geodetic_frame_is_centred_and_metric():
    assert sim.geodetic_to_neu(60.0, 120.0, 0.0) == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)
    n, e, u = sim.geodetic_to_neu(60.1, 120.0, 0.0)  # 0.1° of latitude ≈ 11.1 km north
    assert n == pytest.approx(11_137, rel=2e-3) and abs(e) < 1e-6 and -20 < u < 0


# -- missile --------------------------------------------------------------------------------
@needs_jsbsim
def test_missile_hits_a_non_manoeuvring_target_in_range():
    shooter, target = level_f16(name="s"), level_f16(name="t", lat=60.07)  # ~7.8 km ahead, same course
    missile = sim.Missile(shooter, target, sim.MissileModel())
    for _ in range(60 * 40):
        target.run()
        target.sense()
        missile.step(1 / 60, target.pos, target.vel)
        if not missile.alive:
            break
    assert missile.state == "hit", (missile.state, missile.t, missile.speed)


def test_missile_fails_when_it_has_no_energy():
    still = SimpleNamespace(pos=(0.0, 0.0, 6000.0), vel=(0.0, 0.0, 0.0), alive=True)
    far = SimpleNamespace(pos=(50_000.0, 0.0, 6000.0), vel=(300.0, 0.0, 0.0), alive=True)
    missile = sim.Missile(still, far, sim.MissileModel(thrust=0.0))  # launched at 0 m/s, no motor
    for _ in range(60 * 5):
        missile.step(1 / 60, far.pos, far.vel)
    assert missile.state == "miss"


# -- termination ----------------------------------------------------------------------------
def _state(**kw):
    base = dict(alt=6000.0, vn=250.0, ve=0.0, vd=0.0, p=0.0, q=0.0, r=0.0, nx=0.0, ny=0.0, nz=-1.0, time=20.0)
    return SimpleNamespace(**(base | kw))


def test_crash_conditions():
    crashed = sim.crashed
    assert not crashed(_state())
    assert crashed(_state(alt=2400.0))  # below 2,500 m
    assert crashed(_state(nz=-12.0))  # overload after 10 s
    assert not crashed(_state(nz=-12.0, time=5.0))  # ... but not during the first 10 s
    assert crashed(_state(ny=11.0)) and crashed(_state(nx=-11.0))
    assert crashed(_state(p=2000.0, time=1.0))  # extreme angular rate
    assert crashed(_state(vn=float("nan"), time=1.0))  # extreme (non-finite) velocity


@needs_jsbsim
def test_low_start_crashes_everyone_and_loses(monkeypatch):
    monkeypatch.setattr(combat, "START_ALT", 2400.0)
    env = combat.LagEnv(NO_WEAPON, lag.Config())
    env.reset(0)
    view, reward, terminated, truncated, info = env.step((22, 22))
    assert terminated and not truncated and info["loss"] and not info["win"] and info["crash"] == 2
    assert reward < -200.0 + 5.0 and not view.alive.any()


@needs_jsbsim
def test_all_enemies_down_is_a_win_and_dead_agents_get_zero():
    env = combat.LagEnv(NO_WEAPON, lag.Config())
    env.reset(0)
    for ac in env.aircraft[2:]:
        ac.alive, ac.shot_down = False, True
    view, reward, terminated, _, info = env.step((22, 22))
    assert terminated and info["win"] and not info["loss"]
    assert (view.obs[0][9 + 6:] == 0).all()  # dead enemies' feature blocks are zeros
    env.reset(0)
    env.aircraft[0].alive = False
    assert env._reward(0, False, {}) == 0.0


@needs_jsbsim
def test_win_waits_until_no_missile_is_inbound_on_red():
    env = combat.LagEnv(SHOOT, lag.Config())
    env.reset(0)
    red, blues = env.aircraft[0], env.aircraft[2:]
    inbound = sim.Missile(blues[0], red, env.missile_model)
    env.missiles.append(inbound)
    for ac in blues:
        ac.alive, ac.shot_down = False, True
    _, _, terminated, _, _ = env.step((44, 44))  # hold course, no fire
    assert inbound.state == "flying" and not terminated  # Blue is down, but a missile still chases Red
    inbound.state = "miss"
    _, _, terminated, _, info = env.step((44, 44))
    assert terminated and info["win"]


@needs_jsbsim
def test_missile_hit_is_plus_200_for_the_shooter_and_minus_200_for_the_target():
    env = combat.LagEnv(SHOOT, lag.Config())
    env.reset(0)
    red, blue = env.aircraft[0], env.aircraft[2]
    m = sim.Missile(red, blue, env.missile_model)
    m.state = "hit"
    env.missiles.append(m)
    _, reward, *_ = env.step((44, 44))  # hold course, no fire
    assert not blue.alive and blue.shot_down and env.stats["missiles_hit"] == 1
    assert reward > 200.0 / 2 - 20.0  # mean over the 2 Red agents of +200 and ~0
    m2 = sim.Missile(blue, env.aircraft[1], env.missile_model)
    m2.state = "hit"
    env.missiles.append(m2)
    _, reward, *_ = env.step((44, 44))
    assert reward < -200.0 / 2 + 20.0


# -- reward terms -----------------------------------------------------------------------------
def test_reward_terms_signs_and_bounds():
    assert sim.orientation(0.0, 0.0) == 1.0 and sim.orientation(math.pi, math.pi) == -1.0
    assert sim.orientation(0.0, math.pi) == pytest.approx(0.0)
    angles = np.linspace(0, math.pi, 7)
    assert all(-1.0 <= sim.orientation(a, t) <= 1.0 for a in angles for t in angles)
    assert sim.range_factor(1000.0) == 1.0 and 0 < sim.range_factor(20_000.0) < sim.range_factor(6000.0) < 1.0
    assert sim.altitude_reward(6000.0, -100.0) == 0.0  # safe altitude: no penalty
    assert sim.altitude_reward(3800.0, 10.0) == 0.0 and sim.altitude_reward(3800.0, -20.0) < 0.0
    assert sim.altitude_reward(3000.0, 0.0) < 0.0
    assert sim.altitude_reward(0.0, -1000.0) == -2.0  # each term lies in [-1, 0]
    north = (250.0, 0.0, 0.0)
    behind = sim.Kinematics((0, 0, 6000.0), north, 250.0)  # on the enemy's tail
    ahead = sim.Kinematics((2000.0, 0, 6000.0), north, 250.0)
    assert sim.posture_potential(behind, [ahead]) > 0 > sim.posture_potential(ahead, [behind])
    missile = sim.Kinematics((-3000.0, 0.0, 6000.0), (600.0, 0.0, 0.0), 600.0)  # chasing from behind
    fleeing = sim.Kinematics((0.0, 0.0, 6000.0), north, 250.0)
    towards = sim.Kinematics((0.0, 0.0, 6000.0), (-250.0, 0.0, 0.0), 250.0)
    assert sim.missile_posture(fleeing, missile, -5.0) > 0 > sim.missile_posture(towards, missile, -5.0)
    assert abs(sim.missile_posture(fleeing, missile, -1e4)) <= 1.0


# -- errors -----------------------------------------------------------------------------------
def test_bad_task_and_fields_are_config_errors():
    with pytest.raises(envs.ConfigError, match="valid tasks: 2v2-NoWeapon-vsBaseline"):
        envs.make("lag", "1v1-NoWeapon")
    with pytest.raises(envs.ConfigError, match="autopilot_every"):
        envs.make("lag", NO_WEAPON, autopilot_every=0)


def test_missing_jsbsim_is_env_unavailable_with_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "jsbsim", None)
    with pytest.raises(EnvUnavailable, match=r"env=lag needs .*pip install 'hasac-bench\[lag\]'") as info:
        envs.make("lag", NO_WEAPON)
    assert "\n" not in str(info.value)


def test_missing_jsbsim_exits_2_from_the_harness(tmp_path):
    code = ("import sys, runpy; sys.modules['jsbsim'] = None\n"
            f"sys.argv = ['run', 'env=lag', 'task={NO_WEAPON}', 'algo=random', 'budget=10', 'eval_every=10', "
            f"'results_dir={tmp_path}', 'progress=false']\n"
            "runpy.run_module('harness.run', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "jsbsim" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


@needs_jsbsim
def test_results_and_report_say_this_is_a_reimplementation(tmp_path):
    import json

    import pandas as pd

    from harness.report import write_report
    from harness.run import main

    for seed in (0, 1):
        assert main(["env=lag", f"task={NO_WEAPON}", "algo=random", "budget=20", "eval_every=20", "eval_episodes=1",
                     "env.episode_limit=10", f"seed={seed}", f"results_dir={tmp_path / 'results'}",
                     "progress=false"]) == 0
    summaries = list((tmp_path / "results").rglob("summary.json"))
    assert len(summaries) == 2
    assert all(json.loads(p.read_text())["results_note"] == lag.RESULTS_NOTE for p in summaries)
    suite = summaries[0].parents[4]
    out = write_report([suite], tmp_path / "report", reps=50, seed=0, normalisation="paper", figures=False)
    row = pd.read_csv(out / "table.csv").iloc[0]
    assert row["source"] == f"not comparable: {lag.RESULTS_NOTE}; official behaviour"
    assert row["verdict"] == "not comparable: see source" and np.isnan(row["published"])
    table = (out / "table.md").read_text()  # the long note once, under the table
    assert table.count(lag.RESULTS_NOTE) == 1 and "| [1] |" in table and "reimplementation" in (out / "report.md").read_text()


@needs_jsbsim
def test_debug_view_writes_a_trajectory_png(tmp_path):
    from envs.lag import view

    out = tmp_path / "traj.png"
    assert view.main(["--policy", "hold", "--task", SHOOT, "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000


@needs_jsbsim
def test_vecenv_snapshot_resumes_exactly_across_an_auto_reset():
    rng = np.random.default_rng(2)
    acts = [[rng.integers(45, size=2), rng.integers(45, size=2)] for _ in range(9)]
    a = envs.make("lag", NO_WEAPON, n_envs=2, seed=0, episode_limit=6)
    b = envs.make("lag", NO_WEAPON, n_envs=2, seed=3, episode_limit=6)
    a.reset(), b.reset()
    for act in acts[:4]:
        a.step(act)
    b.set_state(a.get_state())
    for act in acts[4:]:  # the episode ends at step 6 and auto-resets
        sa, sb = a.step(act), b.step(act)
        np.testing.assert_array_equal(sa.state, sb.state)
        np.testing.assert_array_equal(sa.reward, sb.reward)
        np.testing.assert_array_equal(sa.done, sb.done)
    a.close(), b.close()


# -- 1-Heading: the task for a learned low-level controller -----------------------------------
@needs_jsbsim
def test_heading_task_spaces_and_the_pid_bar():
    env = envs.make("lag", HEADING, n_envs=1, seed=0)
    assert env.spec.n_agents == 1 and env.spec.obs_spaces[0].shape == (12,)
    assert env.spec.action_spaces[0].shape == (4,) and env.spec.action_kind == "box"
    env.close()

    def score(policy, steps=150):
        env, ap, total = heading.HeadingEnv(lag.Config(episode_limit=steps)), sim.Autopilot(), 0.0
        env.reset(0)
        for _ in range(steps):
            _, r, terminated, truncated, _ = env.step([policy(env, ap)])
            total += r
            if terminated or truncated:
                break
        return total

    pid = score(heading.pid_heading_action)
    assert pid > 0.4 * 150  # the bar a learned controller has to beat (mean reward per step in [0, 1])
    assert score(lambda env, ap: np.zeros(4, np.float32)) < pid


@needs_jsbsim
def test_heading_task_snapshot_replays_targets_and_flight():
    cfg = lag.Config(episode_limit=400)
    a, b = heading.HeadingEnv(cfg), heading.HeadingEnv(cfg)
    a.reset(7), b.reset(1)
    rng = np.random.default_rng(0)
    acts = [rng.uniform(-0.2, 0.2, 4).astype(np.float32) for _ in range(170)]  # crosses a target change
    for act in acts[:100]:
        a.step([act])
    b.set_state(a.get_state())
    for act in acts[100:]:
        va, ra, *_ = a.step([act])
        vb, rb, *_ = b.step([act])
        np.testing.assert_array_equal(va.state, vb.state)
        assert ra == rb


@needs_jsbsim
def test_view_draws_a_run_from_its_directory(tmp_path, capsys):
    from harness import view
    from harness.run import main

    root = tmp_path / "results"
    assert main(["env=lag", f"task={NO_WEAPON}", "algo=random", "budget=20", "eval_every=20", "eval_episodes=1",
                 "env.episode_limit=10", f"results_dir={root}", "progress=false"]) == 0
    [run] = [p.parent for p in root.rglob("DONE")]
    out = tmp_path / "traj.png"
    assert view.main([str(run), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000 and "wrote" in capsys.readouterr().out
    assert view.main([str(tmp_path), "--out", str(out)]) == 2  # not a run directory: one line
    assert capsys.readouterr().err.count("\n") == 1
