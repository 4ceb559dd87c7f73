"""``sessions-lab attack``: the security promise of each mode, demonstrated on a running cluster.

Each demonstration is an attack a workshop can reason about — replaying a
cookie or token after logout, planting a session id before login (fixation),
forging or replaying a token — run for real over HTTP through nginx. Each
says what the mode promises, what happened, and whether that is the promise
kept. A mode that cannot keep a promise (a signed cookie cannot be revoked)
predicts that too: the table shows it plainly rather than calling it a bug.
What a mode promises comes from its record in ``sessions_lab.modes`` (what
the client carries, whether logout revokes it, what a logout does while the
store is down), never from its name.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sessions_lab.modes import MODES, Credential, get_mode
from sessions_lab.shop_client import Client

PASSWORD = "demo-password"  # noqa: S105 - the lab's published demo password


@dataclass(frozen=True)
class Outcome:
    attack: str
    expected: str
    observed: str
    detail: str = ""  # what else was seen, shown but not compared

    @property
    def as_expected(self) -> bool:
        return self.expected == self.observed


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _identity(client: Client) -> str:
    status, body = client.call("GET", "/api/whoami/")
    if status == 401:
        return "refused (401)"
    if status == 200 and body and body.get("authenticated"):
        return "logged in"
    return "anonymous" if status == 200 else f"HTTP {status}"


def cookie_replay_after_logout(base: str, mode: str, user: str) -> Outcome:
    victim = Client(base, jwt=False)
    victim.log_in(user, PASSWORD, cart=False)
    stolen = victim.cookie("sessionid")
    victim.call("POST", "/api/session/logout/")
    thief = Client(base, jwt=False)
    thief.set_cookie("sessionid", stolen)
    expected = "anonymous" if get_mode(mode).logout_revokes_credential else "logged in"
    return Outcome("replay a session cookie after logout", expected, _identity(thief))


def session_fixation(base: str, mode: str, user: str) -> Outcome:
    attacker = Client(base, jwt=False)
    attacker.call("GET", "/api/whoami/")
    attacker.call("PUT", "/api/cart/items/1/", {"quantity": 1})  # now there is a session id
    planted = attacker.cookie("sessionid")
    victim = Client(base, jwt=False)
    victim.set_cookie("sessionid", planted)  # the id the attacker planted in the victim's browser
    victim.log_in(user, PASSWORD, cart=False)
    rotated = victim.cookie("sessionid") != planted
    attacker_view = _identity(attacker)
    observed = "rotated at login, planted id " + attacker_view if rotated else "not rotated"
    return Outcome(
        "plant a session id before login (fixation)",
        "rotated at login, planted id anonymous",
        observed,
    )


def tampered_cookie(base: str, mode: str, user: str) -> Outcome:
    client = Client(base, jwt=False)
    client.log_in(user, PASSWORD, cart=False)
    value = client.cookie("sessionid")
    client.set_cookie("sessionid", value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    return Outcome("tamper with the session cookie", "anonymous", _identity(client))


def access_token_after_logout(base: str, mode: str, user: str) -> Outcome:
    client = Client(base, jwt=True)
    client.log_in(user, PASSWORD, cart=False)
    access = client.access
    client.call("POST", "/api/token/logout/", {"refresh": client.refresh})
    thief = Client(base, jwt=True, access=access)
    payload = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
    left = max(0, int(payload["exp"] - time.time()))
    return Outcome(
        "replay an access token after logout",
        "logged in",
        _identity(thief),
        detail=f"until exp, {left // 60}:{left % 60:02d} from now",
    )


def blacklisted_refresh(base: str, mode: str, user: str) -> Outcome:
    client = Client(base, jwt=True)
    client.log_in(user, PASSWORD, cart=False)
    refresh = client.refresh
    client.call("POST", "/api/token/logout/", {"refresh": refresh})
    status, _ = client.call("POST", "/api/token/refresh/", {"refresh": refresh})
    return Outcome("replay a blacklisted refresh token", "refused (401)", _status(status))


def _status(status: int) -> str:
    return (
        "refused (401)"
        if status == 401
        else f"accepted ({status})"
        if status < 400
        else f"HTTP {status}"
    )


def forged_tokens(base: str, mode: str, user: str) -> list[Outcome]:
    client = Client(base, jwt=True)
    client.log_in(user, PASSWORD, cart=False)
    header, payload, signature = client.access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = {
        "alg:none token": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "token with a changed user id": f"{header}.{_b64({**claims, 'user_id': '1'})}.{signature}",
        "expired token (exp in the past)": f"{header}.{_b64({**claims, 'exp': int(time.time()) - 60})}.{signature}",
    }
    outcomes = []
    for name, token in forged.items():
        outcomes.append(
            Outcome(
                f"use a forged {name}",
                "refused (401)",
                _identity(Client(base, jwt=True, access=token)),
            )
        )
    return outcomes


SESSION_ATTACKS: list[Callable[[str, str, str], Outcome]] = [
    cookie_replay_after_logout,
    session_fixation,
    tampered_cookie,
]
JWT_ATTACKS: list[Callable[[str, str, str], Any]] = [
    access_token_after_logout,
    blacklisted_refresh,
    forged_tokens,
]


# Why a copied credential outlives logout, per kind of credential: a mode
# that cannot revoke one inherits the explanation from what it carries.
WHY_LOGOUT_CANNOT_REVOKE: dict[Credential, str] = {
    Credential.SIGNED_SESSION: "a signed cookie *is* the session, so a copy stays valid after "
    "logout until it expires — the price of keeping no server state (documented, not a bug).",
    Credential.JWT: "logout blacklists the refresh token, but an access token is checked by "
    "signature alone and works until its exp (5 minutes by default).",
}


# The replays above run with every server up; what a logout does while the
# mode's store is down is the registry's promise, shown under this heading.
LOGOUT_WHILE_STORE_DOWN = "A logout while the mode's store is down:"


def run_attacks(base: str, mode: str, user: str = "user1") -> list[Outcome]:
    outcomes: list[Outcome] = []
    carries_token = get_mode(mode).credential is Credential.JWT
    for attack in JWT_ATTACKS if carries_token else SESSION_ATTACKS:
        result = attack(base, mode, user)
        outcomes.extend(result if isinstance(result, list) else [result])
    return outcomes


def table(results: dict[str, list[Outcome]]) -> str:
    lines = [
        "| mode | attack | the mode promises | observed | |",
        "|---|---|---|---|---|",
    ]
    for mode, outcomes in results.items():
        for outcome in outcomes:
            mark = "as promised" if outcome.as_expected else "NOT as promised"
            observed = outcome.observed + (f" ({outcome.detail})" if outcome.detail else "")
            lines.append(
                f"| {mode} | {outcome.attack} | {outcome.expected} | {observed} | {mark} |"
            )
    # One note per mode whose logout cannot revoke a copy, then what each
    # mode's logout does while its store is down, in the registry's order
    # whatever order the results came in.
    shown = [mode for name, mode in MODES.items() if name in results]
    notes = [
        f"{mode.name}: {WHY_LOGOUT_CANNOT_REVOKE[mode.credential]}"
        for mode in shown
        if not mode.logout_revokes_credential
    ]
    notes += [*([""] if notes else []), LOGOUT_WHILE_STORE_DOWN]
    notes += [f"{mode.name}: {mode.logout_while_store_down_text}." for mode in shown]
    return "\n".join([*lines, "", *notes]) + "\n"
