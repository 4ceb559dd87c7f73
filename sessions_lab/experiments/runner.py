"""Run a scenario over several modes: bring the cluster up, shop with Locust, break it on time.

Locust runs in processes of its own (``load.py``: one, or a master and its
workers): importing it patches a process with gevent, and the lab must stay
a plain Python program. For each mode: ``up`` → Locust headless → fire the
scenario's events at their second → Locust ends → ``down`` → summarise.
Ctrl-C tears the cluster down and keeps whatever results exist. The cluster
is native processes, docker compose or Kubernetes (``--driver``); past
``driver_for`` the runner sees only ``Driver``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from sessions_lab.cluster.binaries import find_binary
from sessions_lab.cluster.config import ShopOptions
from sessions_lab.cluster.driver import Driver, driver_for
from sessions_lab.cluster.driver import refusal as driver_refusal
from sessions_lab.cluster.errors import LabError
from sessions_lab.experiments import report
from sessions_lab.experiments.expectations import RAMP_UP_SHARE
from sessions_lab.experiments.load import TOTALS_FILE, Load, load_origin, locust_totals, progress
from sessions_lab.experiments.results import (
    SCHEMA_VERSION,
    ModeRun,
    not_applicable,
    summarise_mode,
    write_summary,
)
from sessions_lab.experiments.scenarios import RunOptions, Scenario, stores, verdict
from sessions_lab.modes import MODE_NAMES, LoadBalancing, get_mode
from sessions_lab.order_audit import ORDERS_FILE


class ExperimentError(Exception):
    """The experiment could not measure what it set out to; the message says why."""


@dataclass
class Experiment:
    scenario: Scenario
    modes: list[str]
    users: int = 30
    duration: int = 40
    instances: int = 3
    affinity: str = "cookie"
    db: str = "sqlite"
    redis_persistence: str = "none"
    replication: str = "async"  # replicated mode: sync makes each save wait for a replica
    shop: ShopOptions = field(default_factory=ShopOptions)  # --cart-store, --session-idle, …
    seed: int = 1234
    conditional_writes: bool = False  # shoppers send If-Match: a stale write gets 412
    port: int = 8080
    out: Path = field(default_factory=lambda: default_out_dir("experiment"))
    run_dir: Path = Path(".lab")
    driver: str = "native"  # or "compose", "kubernetes": the same scenarios there
    load_workers: int = 1  # Locust as one process, or a master and this many workers
    say: Callable[[str], None] = print

    @property
    def demo_users(self) -> int:
        """Accounts enough for every shopper: workers number theirs apart, leaving gaps."""
        return max(self.users, 10) + self.load_workers - 1

    def choices(self) -> dict[str, Any]:
        """The run's options a prediction may depend on, besides the database and persistence."""
        shop = asdict(self.shop)
        return {
            "conditional_writes": self.conditional_writes,
            "replication": self.replication,
            "affinity": self.affinity,
            "duration_s": self.duration,
            **shop,
        }

    def options(self) -> RunOptions:
        return RunOptions(self.db, self.redis_persistence, **self.choices())

    def refusal(self) -> str | None:
        """Why this run cannot be made, asked before anything starts: the scenario's, the driver's."""
        why = self.scenario.refusal(self.options())
        for mode in self.modes:
            if (
                self.scenario.expectation(mode, self.db, self.redis_persistence, **self.choices())
                is None
            ):
                continue  # skipped: it does not apply
            pinned = get_mode(mode).load_balancing is LoadBalancing.AFFINITY
            events = self.scenario.timeline(
                self.instances, stores(mode, self.db, self.redis_persistence)
            )
            why = why or driver_refusal(
                self.driver, self.scenario.name, events,
                affinity=self.affinity if pinned else None, db=self.db,
                redis_persistence=self.redis_persistence, replication=self.replication,
                shop=self.shop,
            )  # fmt: skip
        return why

    def run(self) -> dict[str, Any]:
        """Run every mode in turn; returns summary.json's content (also written to ``out``)."""
        self.out.mkdir(parents=True, exist_ok=True)
        summary = self._summary_head()
        try:
            for mode in self.modes:
                summary["modes"][mode] = self._run_mode(mode)
                self._write(summary)
        except KeyboardInterrupt:
            summary["interrupted"] = True
            self._write(summary)
            raise
        self._write(summary)
        return summary

    # ------------------------------------------------------------------ one mode

    def _run_mode(self, mode: str) -> dict[str, Any]:
        expectation = self.scenario.expectation(
            mode,
            self.db,
            self.redis_persistence,
            **self.choices(),
        )
        if expectation is None:
            why = self.scenario.why_not_applicable(mode, self.db, self.redis_persistence)
            self.say(f"[{mode}] {self.scenario.name} does not apply ({why}): skipped")
            return not_applicable(why)
        folder = self.out / mode
        folder.mkdir(parents=True, exist_ok=True)
        for stale in LIVE_FILES:  # an earlier run into the same folder: its clock is not ours
            (folder / stale).unlink(missing_ok=True)
        cluster = driver_for(self.driver, self.run_dir)
        pinned = get_mode(mode).load_balancing is LoadBalancing.AFFINITY
        affinity = self.affinity if pinned else None
        self.say(
            f"[{mode}] starting {self.instances} instances"
            + (f" ({affinity} affinity)" if affinity else "")
        )
        # The run folder's logs outlive a run (and hold a user's own traffic
        # too): this mode keeps only what is written from here on.
        log_marks = log_sizes(cluster.run.logs)
        state = cluster.up(
            mode,
            instances=self.instances,
            affinity=affinity,
            db=self.db,
            port=self.port,
            redis_persistence=self.redis_persistence,
            demo_users=self.demo_users,
            replication=self.replication,
            shop=self.shop,
        )
        events_log: list[dict[str, Any]] = []
        try:
            started_at = self._shop_and_break(mode, cluster, state, folder, events_log, affinity)
            self._read_orders(cluster, folder, started_at)
        finally:
            self._keep_logs(cluster, folder, log_marks)
            cluster.down()
        run = ModeRun(
            folder=folder,
            events=events_log,
            pinned=pinned,
            started_at=started_at,
            duration_s=self.duration,
        )
        check_measured(run, mode)
        result = summarise_mode(
            run,
            expectation.text,
            lambda r: verdict(
                self.scenario,
                mode,
                r,
                self.db,
                self.redis_persistence,
                **self.choices(),
            ),
        )
        self.say(
            f"[{mode}] {result['requests']} requests, {result['failed_requests']} failed, "
            f"{result['users_lost_session']} of {result['users_total']} users lost their session, "
            f"orders {report.orders_line(result)} — {result['verdict']}"
            + (f": {result['verdict_reason']}" if result["verdict_reason"] else "")
        )
        return result

    def _read_orders(self, cluster: Driver, folder: Path, started_at: float) -> None:
        """The database's side of the order audit, read before the cluster goes down."""
        try:
            placed = cluster.manage("orders_placed", "--since", f"{started_at - 1:.3f}")
        except LabError as error:
            placed = json.dumps({"error": str(error)})
        (folder / ORDERS_FILE).write_text(placed.strip() + "\n", encoding="utf-8")

    def _shop_and_break(
        self,
        mode: str,
        cluster: Driver,
        state: Mapping[str, Any],
        folder: Path,
        events_log: list[dict[str, Any]],
        affinity: str | None,
    ) -> float:
        store = stores(mode, self.db, self.redis_persistence)
        timeline = sorted(self.scenario.timeline(self.instances, store), key=lambda e: e.at)
        url = state.get("url") or f"http://127.0.0.1:{self.port}"
        arguments = [
            "--headless",
            "--host", url.rstrip("/"),
            "-u", str(self.users), "-r", f"{spawn_rate(self.users, self.duration):.2f}",
            "-t", f"{self.duration}s", "--stop-timeout", "5",
            "--csv", str(folder / "locust"), "--only-summary",
            "--users-out", str(folder / "users.jsonl"),
            "--timeline-out", str(folder / "timeline.jsonl"),
            "--totals-out", str(folder / TOTALS_FILE),
            "--failures-out", str(folder / "failures.jsonl"),
            "--demo-users", str(self.demo_users),
            "--seed", str(self.seed),
        ]  # fmt: skip
        if affinity == "ip":
            arguments.append("--client-ip-per-user")
        if self.conditional_writes:
            arguments.append("--conditional-writes")
        arguments.extend(self.scenario.load(self.options()))
        env = {**os.environ, "PYTHONHASHSEED": str(self.seed)}
        with (folder / "events.jsonl").open("w") as events_out:
            started_at = time.time()
            self._announce(cluster, mode, folder, started_at)
            load = Load(folder, self.load_workers)
            try:
                load.start(arguments, env)
                self._follow(
                    mode, load, cluster, timeline, started_at, folder, events_out, events_log
                )
            except BaseException:
                load.stop()
                raise
            load.finish()
        return started_at

    def _follow(
        self,
        mode: str,
        load: Load,
        cluster: Driver,
        timeline: list[Any],
        started_at: float,
        folder: Path,
        events_out: TextIO,
        events_log: list[dict[str, Any]],
    ) -> None:
        """Fire each event at its second and show progress until Locust ends (bounded in time)."""
        pending = list(timeline)
        deadline = started_at + self.duration + 60
        last_shown = -1
        load_started: float | None = None
        while load.running():
            load.follow()
            now = time.time()
            # Events and progress on the load's clock (the timeline's, which the
            # summary and the report use): nothing fires before Locust (and its
            # workers) has booted and says when its clock started.
            load_started = load_started or load_origin(folder / "timeline.jsonl")
            elapsed = now - load_started if load_started else -1.0
            while pending and elapsed >= pending[0].at_seconds(self.duration):
                event = pending.pop(0)
                record = self._fire(cluster, event, elapsed)
                events_log.append(record)
                events_out.write(json.dumps(record) + "\n")
                events_out.flush()
                self.say(f"[{mode}] {record['t']:5.1f}s  {record['action']} {record['target']}"
                         + (f" ({record['signal']})" if record.get("signal") else "")
                         + ("" if record["ok"] else f"  FAILED: {record['message']}"))  # fmt: skip
            if elapsed >= 0 and int(elapsed) // 5 > last_shown and elapsed < self.duration:
                last_shown = int(elapsed) // 5
                self.say(f"[{mode}] {elapsed:5.1f}s/{self.duration}s  {progress(folder)}")
            if now > deadline:
                load.stop()
                raise ExperimentError(
                    f"Locust did not finish within {self.duration + 60} s in {mode} mode"
                )
            # The timeline's pace, not a wait for a condition: each tick fires what is
            # due, shows progress and checks the deadline.
            time.sleep(0.1)

    def _fire(self, cluster: Driver, event: Any, elapsed: float) -> dict[str, Any]:
        record = {
            "t": round(elapsed, 1),
            "at": round(time.time(), 3),
            "action": event.action,
            "target": event.target,
            "signal": event.signal,
        }
        try:
            if event.action == "kill":
                message = cluster.kill(event.target, event.signal or "KILL")
            elif event.action == "start":
                message = cluster.start(event.target)
            elif event.action == "drain":
                message = cluster.drain(event.target)
            elif event.action == "add":
                message = cluster.add(event.target)
            else:
                raise LabError(f"the cluster cannot {event.action} yet")
            record.update(ok=True, message=message)
        except LabError as error:
            record.update(ok=False, message=str(error))
        return record

    def _announce(self, cluster: Driver, mode: str, folder: Path, started_at: float) -> None:
        """Tell onlookers (the live dashboard) where this run's live files are."""
        live = {
            "scenario": self.scenario.name,
            "mode": mode,
            "started_at": started_at,
            "duration_s": self.duration,
            "timeline": str((folder / "timeline.jsonl").resolve()),
            "events": str((folder / "events.jsonl").resolve()),
            "users": str((folder / "users.jsonl").resolve()),
        }
        cluster.run.experiment.write_text(json.dumps(live, indent=2) + "\n")

    def _keep_logs(self, cluster: Driver, folder: Path, marks: dict[str, int]) -> None:
        """Every process's log and nginx's access log, beside the Locust files: what this
        mode's run wrote, from the sizes ``marks`` had before it."""
        logs = cluster.collect_logs()
        if not logs.exists():
            return
        kept = folder / "logs"
        kept.mkdir(exist_ok=True)
        for log in sorted(path for path in logs.iterdir() if path.is_file()):
            with log.open("rb") as source:
                source.seek(marks.get(log.name, 0) if logs == cluster.run.logs else 0)
                (kept / log.name).write_bytes(source.read())

    # ------------------------------------------------------------------ summary

    def _summary_head(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "scenario": self.scenario.name,
            "instances": self.instances,
            "users": self.users,
            "duration_s": self.duration,
            "affinity": self.affinity,
            "db": self.db,
            "redis_persistence": self.redis_persistence,
            "replication": self.replication,
            **asdict(self.shop),  # cart_store, encrypt_sessions, session_idle, session_absolute
            "seed": self.seed,
            "conditional_writes": self.conditional_writes,
            "load_workers": self.load_workers,
            "versions": versions(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "modes": {},
        }

    def _write(self, summary: dict[str, Any]) -> None:
        write_summary(self.out / "summary.json", summary)
        report.write_reports(summary, self.out)


# What a mode's run writes as it goes, and reads back before it is over.
LIVE_FILES = ("timeline.jsonl", "events.jsonl", "users.jsonl", "failures.jsonl", ORDERS_FILE)


def spawn_rate(users: int, duration: float) -> float:
    """Users started per second: all of them within the ramp-up, at least one a second."""
    return max(1.0, users / max(1.0, duration * RAMP_UP_SHARE))


def log_sizes(folder: Path) -> dict[str, int]:
    """How long each log of ``folder`` is now: where this run's part of it begins."""
    if not folder.is_dir():
        return {}
    return {path.name: path.stat().st_size for path in folder.iterdir() if path.is_file()}


def check_measured(run: ModeRun, mode: str) -> None:
    """A run without a single request measured nothing: that is an error, never a pass."""
    if locust_totals(run.folder)["requests"] == 0:
        raise ExperimentError(
            f"Locust made no requests in {mode} mode: see {run.folder / 'locust.log'}"
        )


def versions() -> dict[str, str]:
    found = {}
    for name in ("django", "locust"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "unknown"
    for role in ("nginx", "redis", "memcached"):
        try:
            found[role] = find_binary(role).version_text
        except Exception:  # a version is information, never a reason to fail
            found[role] = "unknown"
    return found


def default_out_dir(scenario: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / f"{stamp}-{scenario}"


def parse_modes(text: str) -> list[str]:
    if text == "all":
        return list(MODE_NAMES)
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODE_NAMES]
    if unknown or not modes:
        raise LabError(
            f"unknown mode {', '.join(unknown) or '(none)'}: use all or some of {', '.join(MODE_NAMES)}"
        )
    return modes
